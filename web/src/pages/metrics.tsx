// Delivery metrics per app and environment, from the history: deploy frequency, lead time from push
// to production, change failure rate, time to restore (the four DORA metrics), as small charts.
import { useState } from "preact/hooks";
import { Delivery, get, Node, qs } from "../api";
import { BarChart, LineChart, Point } from "../charts";
import { ErrorBox, fmtSeconds, Route, Select, setQuery, useLoad } from "../util";

const pct = (v: number | null | undefined) =>
  v === null || v === undefined ? "—" : `${(v * 100).toFixed(v < 0.1 ? 1 : 0)}%`;
const short = (s: number) => fmtSeconds(s);

function MetricCard(props: {
  title: string;
  value: string;
  fmt: (v: number) => string;
  points: Point[];
  help: string;
}) {
  return (
    <div class="metric card">
      <h3>{props.title}</h3>
      <div class="metric-value">{props.value}</div>
      {props.points.some((p) => p.value !== null) ? (
        <LineChart title={`${props.title.toLowerCase()}, per day`} fmt={props.fmt} points={props.points} />
      ) : (
        <p class="no-data">No data in this period.</p>
      )}
      <p class="muted">{props.help}</p>
    </div>
  );
}

export function Metrics({ route }: { route: Route }) {
  const [f, setF] = useState({
    app: route.query.get("app") || "",
    env: route.query.get("env") || "",
    days: route.query.get("days") || "30",
  });
  const query = qs(f);
  const m = useLoad(`delivery${query}`, () => get<Delivery>(`/api/v1/metrics/delivery${query}`));
  const apps = useLoad("artifacts", () => get<{ apps: { app: string }[] }>("/api/v1/artifacts"));
  const nodes = useLoad("nodes-all", () => get<{ nodes: Node[] }>("/api/v1/nodes"));
  const envs = [...new Set((nodes.data?.nodes || []).map((n) => n.env))].sort();
  const set = (k: string, v: string) => {
    const next = { ...f, [k]: v };
    setF(next);
    setQuery("/metrics", next);
  };
  const s = m.data?.summary;
  const series = m.data?.series || [];
  return (
    <section>
      <div class="page-head">
        <h1>Delivery metrics</h1>
        <button onClick={m.reload}>Refresh</button>
      </div>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <Select
          name="app"
          value={f.app}
          any="every app"
          options={(apps.data?.apps || []).map((a) => a.app)}
          onChange={(v) => set("app", v)}
        />
        <Select
          name="env"
          label="environment"
          value={f.env}
          any="every environment"
          options={envs}
          onChange={(v) => set("env", v)}
        />
        <Select
          name="days"
          label="period"
          value={f.days}
          options={["7", "30", "90", "365"].map((d) => [d, `${d} days`])}
          onChange={(v) => set("days", v)}
        />
      </form>
      <ErrorBox error={m.error} />
      {m.data && (
        <>
          <p class="muted">
            From {m.data.from.slice(0, 10)} to {series[series.length - 1]?.day ?? m.data.to.slice(0, 10)}:{" "}
            {s?.deploys ?? 0} deploy(s).
          </p>
          <div class="metrics">
            <div class="metric card">
              <h3>Deploy frequency</h3>
              <div class="metric-value">
                {s?.deploy_frequency_per_day === null || s?.deploy_frequency_per_day === undefined
                  ? "—"
                  : `${s.deploy_frequency_per_day.toFixed(2)} / day`}
              </div>
              <BarChart
                title="deploys per day"
                fmt={(v) => String(Math.round(v * 10) / 10)}
                points={series.map((p) => ({ label: p.day, value: p.deploys + p.failures, part: p.failures }))}
              />
              <p class="muted">
                Deploys per day: successful ones in blue, failed ones in red; the figure counts the successful ones.
              </p>
            </div>
            <MetricCard
              title="Lead time for changes"
              value={fmtSeconds(s?.lead_time_seconds_median)}
              fmt={short}
              points={series.map((p) => ({ label: p.day, value: p.lead_time_seconds_median }))}
              help="Median time from the push of a version to its successful deploy."
            />
            <MetricCard
              title="Change failure rate"
              value={pct(s?.change_failure_rate)}
              fmt={pct}
              points={series.map((p) => ({
                label: p.day,
                value: p.deploys + p.failures > 0 ? p.failures / (p.deploys + p.failures) : null,
              }))}
              help="Share of deploys that failed or were rolled back."
            />
            <MetricCard
              title="Time to restore"
              value={fmtSeconds(s?.time_to_restore_seconds_median)}
              fmt={short}
              points={series.map((p) => ({ label: p.day, value: p.time_to_restore_seconds_median }))}
              help="Median time from a failed deploy to the next healthy release there."
            />
          </div>
        </>
      )}
    </section>
  );
}
