/** The chart `npm run cost` writes (scripts/cost.ts). */

/** A line chart (SVG) of monthly cost per tenant against fleet size, one line per model, both axes logarithmic. */
export function unitCostChart(series: Record<string, { tenants: number; perTenant: number }[]>): string {
  const W = 760;
  const H = 400;
  const m = { l: 70, r: 200, t: 30, b: 50 };
  const all = Object.values(series).flat();
  const xs = all.map((d) => d.tenants);
  const ys = all.map((d) => d.perTenant);
  const [x0, x1] = [Math.log10(Math.min(...xs)), Math.log10(Math.max(...xs))];
  const [y0, y1] = [Math.floor(Math.log10(Math.min(...ys))), Math.ceil(Math.log10(Math.max(...ys)))];
  const X = (v: number) => m.l + ((Math.log10(v) - x0) / (x1 - x0 || 1)) * (W - m.l - m.r);
  const Y = (v: number) => H - m.b - ((Math.log10(v) - y0) / (y1 - y0 || 1)) * (H - m.t - m.b);
  const colours = ['#1b6ac9', '#d4731c', '#2e9e4f', '#8b3fb5', '#c23b5a', '#5a6b7a'];
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<text x="${W / 2}" y="18" text-anchor="middle" font-size="14">Monthly cost per tenant by fleet size (USD, log scales)</text>`,
  ];
  for (let e = y0; e <= y1; e++) {
    const y = Y(10 ** e);
    parts.push(`<line x1="${m.l}" y1="${y}" x2="${W - m.r}" y2="${y}" stroke="#ddd"/>`);
    parts.push(
      `<text x="${m.l - 6}" y="${y + 4}" text-anchor="end">$${10 ** e >= 1 ? (10 ** e).toFixed(0) : (10 ** e).toString()}</text>`,
    );
  }
  for (const t of [...new Set(xs)].sort((a, b) => a - b)) {
    parts.push(
      `<text x="${X(t)}" y="${H - m.b + 18}" text-anchor="middle">${t.toLocaleString('en-US')}</text>`,
    );
  }
  parts.push(
    `<text x="${(m.l + W - m.r) / 2}" y="${H - 12}" text-anchor="middle">tenants of the model</text>`,
  );
  Object.entries(series).forEach(([name, points], i) => {
    const c = colours[i % colours.length];
    const pts = points.map((d) => `${X(d.tenants).toFixed(1)},${Y(d.perTenant).toFixed(1)}`).join(' ');
    // Every other line dashed: lines that coincide (pool and bridge up to 100 tenants) both stay visible.
    const dash = i % 2 === 1 ? ' stroke-dasharray="6 4"' : '';
    parts.push(`<polyline fill="none" stroke="${c}" stroke-width="2"${dash} points="${pts}"/>`);
    for (const d of points) {
      parts.push(
        `<circle cx="${X(d.tenants).toFixed(1)}" cy="${Y(d.perTenant).toFixed(1)}" r="3" fill="${c}"/>`,
      );
    }
    const last = points[points.length - 1];
    parts.push(
      `<text x="${X(last.tenants) + 8}" y="${Y(last.perTenant) + 4}" fill="${c}">${name} $${last.perTenant.toFixed(2)}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('\n');
}
