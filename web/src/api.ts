// The Slipway HTTP API as the console uses it (docs/api.md). Every call sends the signed-in token
// as `Authorization: Bearer`; errors become ApiError with the server's own code and message.

export interface AppOnNode {
  version: string;
  healthy: boolean;
  running: boolean;
  port?: number;
  releases?: string[];
  last_healthy?: string; // the last release that was healthy there
  updated_at?: string | null;
  desired?: string;
  drift?: boolean;
}

export interface Node {
  name: string;
  env: string;
  roles: string[];
  zone: string;
  tags: Record<string, string>;
  address: string;
  agent_version: string;
  state: "alive" | "lost" | "revoked";
  first_seen: string;
  last_seen: string;
  apps: Record<string, AppOnNode>;
  desired?: Record<string, string>;
  drift?: boolean;
  quarantined?: boolean;
  quarantine_reason?: string;
  quarantined_at?: string | null;
}

export interface DeployNode {
  node: string;
  zone: string;
  batch: number;
  from_version: string;
  status: string;
  step: string;
  started_at: string | null;
  finished_at: string | null;
  reason: string;
  reverted_to: string;
  version_now: string;
  downloaded: boolean;
  canary: boolean;
}

export interface Transition {
  at: string;
  actor: string;
  action: string;
  detail: string;
}

export interface Step {
  node: string;
  step: string;
  status: string;
  output: string;
  started_at: string;
  duration_ms: number;
}

export interface ConfigChanges {
  previous_deploy: number;
  from_version: number;
  to_version: number;
  changes: { key: string; secret: boolean; change: string }[];
}

export interface Deploy {
  id: number;
  kind: "deploy" | "rollback" | "converge";
  app: string;
  version: string;
  env: string;
  selector: string;
  strategy: string;
  batch: string;
  max_failures: number;
  canary: string;
  canary_gate: string;
  waiting: string;
  promote_at: string | null;
  state: "running" | "paused" | "succeeded" | "failed" | "rolled_back";
  phase: string;
  reason: string;
  actor: string;
  forced_freeze: string;
  started_at: string;
  finished_at: string | null;
  duration_ms: number;
  batches: number;
  current_batch: number;
  node_count: number;
  healthy_count: number;
  failed_count: number;
  nodes?: DeployNode[];
  log?: Transition[];
  steps?: Step[];
  config_changes?: ConfigChanges | null;
}

export interface WatchEvent {
  deploy: number;
  seq: number;
  at: string;
  kind: string;
  node: string;
  step: string;
  status: string;
  message: string;
  duration_ms: number;
}

export interface Whoami {
  kind: string;
  name: string;
  role: "viewer" | "publisher" | "deployer" | "admin";
  envs: string[];
  apps: string[];
}

export interface Preview {
  kind?: string;
  app: string;
  version: string | null;
  env: string;
  selector?: string;
  count: number;
  nodes: { name: string; zone: string; roles: string[]; batch?: number; canary?: boolean; from_version: string }[];
  batches: number;
  strategy?: string;
  how?: string; // the plan in words
  forced_freeze?: string; // the freezes a forced deploy would go through
  freezes?: { id: number; env: string; app: string; until: string; reason: string; created_by: string }[];
  lost_nodes_left_out?: unknown;
  quarantined_nodes_left_out?: unknown;
  blocked: string | null;
}

export interface ArtifactVersion {
  app: string;
  version: string;
  sha256: string;
  size: number;
  pushed_by: string;
  created_at: string;
}

export interface ArtifactDiff {
  app: string;
  from: string | null; // null: the first release, nothing to compare with
  to: string;
  added: { path: string; type?: string; size: number }[];
  removed: { path: string; type?: string; size: number }[];
  changed: { path: string; type?: string; from_size: number; to_size: number; change?: string }[];
  added_count?: number;
  removed_count?: number;
  changed_count?: number;
  unchanged: number;
  truncated?: boolean;
}

export interface DeliveryDay {
  day: string;
  deploys: number; // successful changes that finished that day
  failures: number; // failed (or rolled back) ones
  lead_time_seconds_median: number | null;
  time_to_restore_seconds_median: number | null;
}

export interface Delivery {
  days: number;
  from: string;
  to: string;
  summary: {
    deploys: number;
    deploy_frequency_per_day: number | null;
    lead_time_seconds_median: number | null;
    change_failure_rate: number | null;
    time_to_restore_seconds_median: number | null;
  };
  series: DeliveryDay[];
}

export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
  ) {
    super(message);
  }
}

const TOKEN_KEY = "slipway.token";

export function savedToken(): string {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function saveToken(token: string): void {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

// Listeners told when the server refuses the token (401): the app goes back to sign-in.
const unauthorizedListeners = new Set<() => void>();
export function onUnauthorized(f: () => void): () => void {
  unauthorizedListeners.add(f);
  return () => unauthorizedListeners.delete(f);
}

export async function call<T>(method: string, path: string, body?: unknown, token = savedToken()): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (token) headers["Authorization"] = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, "unreachable", `the server cannot be reached (${(e as Error).message})`);
  }
  const text = await res.text();
  let data: unknown = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const err = (data as { error?: { code?: string; message?: string } } | null)?.error;
    const code = err?.code || `http_${res.status}`;
    const message = err?.message || `${method} ${path}: HTTP ${res.status} ${res.statusText}`;
    if (res.status === 401 && token === savedToken()) unauthorizedListeners.forEach((f) => f());
    throw new ApiError(res.status, code, message);
  }
  return data as T;
}

export const get = <T>(path: string) => call<T>("GET", path);
export const post = <T>(path: string, body?: unknown) => call<T>("POST", path, body ?? {});

// A query string of the non-empty values.
export function qs(params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

export const enc = encodeURIComponent;

// The watch WebSocket of a deploy: the token goes in the `bearer.` subprotocol (a browser cannot
// set headers on a WebSocket); the server answers with the `slipway` subprotocol.
export function watchDeploy(
  id: number,
  onEvent: (ev: WatchEvent, deploy: Partial<Deploy> | undefined) => void,
  onClose: (clean: boolean, reason: string) => void,
): () => void {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const url = `${scheme}//${location.host}/api/v1/deploys/${id}/watch`;
  const ws = new WebSocket(url, ["slipway", `bearer.${savedToken()}`]);
  let closedByUs = false;
  ws.onmessage = (m) => {
    let data: unknown;
    try {
      data = JSON.parse(String(m.data));
    } catch {
      return;
    }
    const items = Array.isArray(data) ? data : [data];
    for (const item of items) {
      const o = item as { event?: WatchEvent; deploy?: Partial<Deploy> };
      if (o && o.event) onEvent(o.event, o.deploy);
    }
  };
  ws.onclose = (e) => {
    if (!closedByUs) onClose(e.wasClean, e.reason);
  };
  return () => {
    closedByUs = true;
    ws.close();
  };
}
