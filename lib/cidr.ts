/** IPv4 CIDR arithmetic for the catalog's VPC ranges. Pure, no dependencies. */

export interface CidrRange {
  /** The address as written (host bits may be set). */
  readonly network: number;
  /** The first and last address of the block. */
  readonly start: number;
  readonly end: number;
  readonly prefix: number;
}

/** Parses "a.b.c.d/n"; undefined when it is not an IPv4 CIDR block. */
export function parseCidr(cidr: string): CidrRange | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(cidr);
  if (!m) return undefined;
  const octets = m.slice(1, 5).map(Number);
  const prefix = Number(m[5]);
  if (octets.some((o) => o > 255) || prefix > 32) return undefined;
  const network = ipToInt(octets.join('.'));
  const size = 2 ** (32 - prefix);
  const start = Math.floor(network / size) * size;
  return { network, start, end: start + size - 1, prefix };
}

export function overlaps(a: CidrRange, b: CidrRange): boolean {
  return a.start <= b.end && b.start <= a.end;
}

/** Whether `inner` lies wholly inside `outer`. */
export function contains(outer: CidrRange, inner: CidrRange): boolean {
  return inner.start >= outer.start && inner.end <= outer.end;
}

const PRIVATE_BLOCKS = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'];

/** Inside one of the RFC 1918 private blocks. */
export function isPrivate(r: CidrRange): boolean {
  return PRIVATE_BLOCKS.some((b) => contains(parseCidr(b)!, r));
}

/** The `slot`-th block of size /`prefix` counted from `base`. */
export function nthBlock(base: string, prefix: number, slot: number): string {
  return `${intToIp(ipToInt(base) + slot * 2 ** (32 - prefix))}/${prefix}`;
}

export function ipToInt(ip: string): number {
  return ip.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
}

export function intToIp(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}
