// The actions a plan is made of: plain data, each naming the host it runs on and why.
// The workflow walks them and hands each to one activity (temporal/activities.ts).
import type { EgressPolicy } from '../hosts/egress-rules.js';
import type { NamedApp } from '../dns/app-records.js';
import type { DesiredApp, DesiredDatabase, ResourceKey } from '../model.js';
import type { NamesConfig } from '../source/names.js';

export type Action =
  | { type: 'ensureNetwork'; host: string; project: string; network: string; reason: string }
  /** `host`: the build host (empty when the cluster has none); `image` is the registry-free name (build-spec.ts). */
  | { type: 'buildImage'; app: DesiredApp; host: string; image: string; reason: string }
  | { type: 'startReplica'; host: string; app: DesiredApp; replica: number; container: string; network: string; reason: string }
  /** A replica of a sleeping app: made, left stopped; its host's waker starts it on the next request. */
  | { type: 'createReplica'; host: string; app: DesiredApp; replica: number; container: string; network: string; reason: string }
  | { type: 'waitHealthy'; app: DesiredApp; replicas: Array<{ host: string; container: string }>; reason: string }
  | { type: 'writeRoute'; host: string; app: DesiredApp; file: string; router: string; containers: string[]; reason: string }
  | { type: 'drain'; ms: number; reason: string }
  | { type: 'removeContainer'; host: string; id: string; name: string; reason: string }
  | { type: 'removeRoute'; host: string; file: string; reason: string }
  | { type: 'removeNetwork'; host: string; network: string; reason: string }
  | { type: 'ensureEgress'; host: string; policy: EgressPolicy; reason: string }
  | { type: 'removeEgress'; host: string; project: string; reason: string }
  | { type: 'startDatabase'; host: string; db: DesiredDatabase; container: string; volume: string; egress: EgressPolicy; reason: string }
  | { type: 'waitDatabase'; host: string; db: DesiredDatabase; container: string; reason: string }
  | { type: 'ensureNames'; config: NamesConfig; apps: NamedApp[]; held: ResourceKey[]; reason: string };

export type ActionOf<T extends Action['type']> = Extract<Action, { type: T }>;

export interface ResourcePlan {
  key: ResourceKey;
  change: 'create' | 'update' | 'heal' | 'remove';
  reason: string;
  actions: Action[];
  /** Resources (keyOf) that must be ready before this one starts: an app's databases. */
  after: string[];
}
