/**
 * The local platform's users, as the platform's Cognito user pool holds them in AWS: each user belongs to one
 * tenant, set by the platform when it invites them (onboarding invites the tenant's first administrator), and
 * offboarding disables every user of the tenant. `npm run token` signs tokens only for enabled users.
 * Kept in `<dir>/users.json`, written whole and renamed into place.
 */
import * as fs from 'fs';
import * as path from 'path';

export interface LocalUser {
  readonly email: string;
  readonly tenantId: string;
  readonly enabled: boolean;
}

/** A request the local users cannot serve: the message says why and what to do. */
export class LocalUserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LocalUserError';
  }
}

/** The administrator a tenant gets when the request names none (local only: the pipeline requires one). */
export const defaultAdminEmail = (tenantId: string) => `admin@${tenantId}.example`;

export class LocalUsers {
  private constructor(readonly file: string) {}

  static open(dir: string): LocalUsers {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    return new LocalUsers(path.join(dir, 'users.json'));
  }

  all(): LocalUser[] {
    if (!fs.existsSync(this.file)) return [];
    return JSON.parse(fs.readFileSync(this.file, 'utf8')) as LocalUser[];
  }

  private save(users: LocalUser[]): void {
    const tmp = `${this.file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(users, null, 2) + '\n', { mode: 0o600 });
    fs.renameSync(tmp, this.file);
  }

  /** Throws when `email` cannot become a user of `tenantId` (it is another tenant's). */
  checkInvitable(tenantId: string, email: string): void {
    const existing = this.all().find((u) => u.email === email.toLowerCase());
    if (existing && existing.tenantId !== tenantId) {
      throw new LocalUserError(
        `${email.toLowerCase()} is already a user of another tenant: a user belongs to one tenant; name another administrator (--admin-email)`,
      );
    }
  }

  /** Invites `email` as a user of `tenantId`; inviting the same user again changes nothing. */
  invite(tenantId: string, email: string): LocalUser {
    this.checkInvitable(tenantId, email);
    const users = this.all();
    const key = email.toLowerCase();
    const existing = users.find((u) => u.email === key);
    if (existing) return existing;
    const user = { email: key, tenantId, enabled: true };
    this.save([...users, user]);
    return user;
  }

  /** Enables or disables every user of a tenant; returns how many it changed. */
  setTenantEnabled(tenantId: string, enabled: boolean): number {
    let changed = 0;
    const users = this.all().map((u) => {
      if (u.tenantId !== tenantId || u.enabled === enabled) return u;
      changed++;
      return { ...u, enabled };
    });
    if (changed > 0) this.save(users);
    return changed;
  }

  /**
   * The user a token is signed for: `email` if given (it must be an enabled user of the tenant), otherwise the
   * tenant's first enabled user.
   */
  signInAs(tenantId: string, email?: string): LocalUser {
    const ofTenant = this.all().filter((u) => u.tenantId === tenantId);
    if (ofTenant.length === 0) {
      throw new LocalUserError(
        `tenant "${tenantId}" has no users on the local platform: start it (npm run local) or onboard the tenant (npm run onboard -- --tenant ${tenantId} --model pool)`,
      );
    }
    const user = email
      ? ofTenant.find((u) => u.email === email.toLowerCase())
      : (ofTenant.find((u) => u.enabled) ?? ofTenant[0]);
    if (!user) {
      throw new LocalUserError(
        `${email} is not a user of tenant "${tenantId}": its users are ${ofTenant.map((u) => u.email).join(', ')}`,
      );
    }
    if (!user.enabled) {
      throw new LocalUserError(
        `${user.email} of tenant "${tenantId}" is disabled (the tenant was offboarded): restore the tenant to sign in again`,
      );
    }
    return user;
  }
}
