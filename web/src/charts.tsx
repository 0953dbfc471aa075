// Small hand-made SVG charts: bars (optionally with a highlighted part) and a line with points.
// Days without a value (null) leave a gap.

export interface Point {
  label: string; // the x label (a day)
  value: number | null;
  part?: number; // for bars: the highlighted part of the value (failures of the deploys)
}

const W = 360;
const H = 140;
const PAD = { left: 44, right: 8, top: 10, bottom: 22 };

function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function Axes({ max, fmt, points }: { max: number; fmt: (v: number) => string; points: Point[] }) {
  const y = (v: number) => PAD.top + (H - PAD.top - PAD.bottom) * (1 - v / max);
  const first = points[0]?.label || "";
  const last = points[points.length - 1]?.label || "";
  return (
    <g class="axes">
      {[0, 0.5, 1].map((t) => (
        <g>
          <line x1={PAD.left} x2={W - PAD.right} y1={y(max * t)} y2={y(max * t)} class="grid" />
          <text x={PAD.left - 4} y={y(max * t) + 4} text-anchor="end">
            {fmt(max * t)}
          </text>
        </g>
      ))}
      <text x={PAD.left} y={H - 6}>
        {first.slice(5)}
      </text>
      <text x={W - PAD.right} y={H - 6} text-anchor="end">
        {last.slice(5)}
      </text>
    </g>
  );
}

export function BarChart({ points, fmt, title }: { points: Point[]; fmt: (v: number) => string; title: string }) {
  const max = niceMax(Math.max(0, ...points.map((p) => p.value ?? 0)));
  const inner = W - PAD.left - PAD.right;
  const bw = points.length ? inner / points.length : inner;
  const h = (v: number) => ((H - PAD.top - PAD.bottom) * v) / max;
  // The bar of day i, v high, from the axis up.
  const bar = (cls: string, i: number, v: number) => (
    <rect class={cls} x={PAD.left + i * bw + bw * 0.15} width={bw * 0.7} y={H - PAD.bottom - h(v)} height={h(v)} />
  );
  return (
    <svg viewBox={`0 0 ${W} ${H}`} class="chart" role="img" aria-label={title}>
      <Axes max={max} fmt={fmt} points={points} />
      {points.map((p, i) =>
        p.value === null || p.value === 0 ? null : (
          <g>
            <title>{`${p.label}: ${fmt(p.value)}${p.part ? ` (${p.part} failed)` : ""}`}</title>
            {bar("bar", i, p.value)}
            {p.part ? bar("bar-part", i, p.part) : null}
          </g>
        ),
      )}
    </svg>
  );
}

export function LineChart({ points, fmt, title }: { points: Point[]; fmt: (v: number) => string; title: string }) {
  const max = niceMax(Math.max(0, ...points.map((p) => p.value ?? 0)));
  const inner = W - PAD.left - PAD.right;
  const step = points.length > 1 ? inner / (points.length - 1) : 0;
  const x = (i: number) => PAD.left + (points.length > 1 ? i * step : inner / 2);
  const y = (v: number) => PAD.top + (H - PAD.top - PAD.bottom) * (1 - v / max);
  // One path segment per run of consecutive known values.
  let d = "";
  let pen = false;
  points.forEach((p, i) => {
    if (p.value === null) {
      pen = false;
      return;
    }
    d += `${pen ? "L" : "M"}${x(i).toFixed(1)},${y(p.value).toFixed(1)} `;
    pen = true;
  });
  return (
    <svg viewBox={`0 0 ${W} ${H}`} class="chart" role="img" aria-label={title}>
      <Axes max={max} fmt={fmt} points={points} />
      <path class="line" d={d} />
      {points.map((p, i) =>
        p.value === null ? null : (
          <circle class="dot" cx={x(i)} cy={y(p.value)} r={2.5}>
            <title>{`${p.label}: ${fmt(p.value)}`}</title>
          </circle>
        ),
      )}
    </svg>
  );
}
