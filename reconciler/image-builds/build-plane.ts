// The build plane: one Builder per build-role host, each driving that host's Docker (over
// SSH for any host but this one), so builds and their gVisor sandboxes run only on build
// hosts and never on a runtime host that is not one. An app builds on the host placement
// names (placement.ts buildHostFor); the image is tagged for the registry as that host
// reaches it and, when any runtime host is another machine, is in the registry before the
// build returns, so the replicas' hosts can pull it.
import type { HostPool } from '../hosts/pool.js';
import type { Host } from '../hosts/host.js';
import type { DesiredApp } from '../model.js';
import { buildHostFor } from '../placement.js';
import { atRegistry } from './build-spec.js';
import { BuildFailure, Builder, type BuildOutcome, type BuilderDeps, type BuildTarget } from './builder.js';

export type BuildPlaneDeps = Omit<BuilderDeps, 'docker' | 'remote'>;

export class BuildPlane {
  private readonly builders = new Map<string, { host: Host; builder: Builder }>();

  constructor(private readonly hosts: HostPool, private readonly deps: BuildPlaneDeps) {}

  /** The build host for `app` now: the one its plan named, else the one placement would name. */
  hostOf(app: Pick<DesiredApp, 'project' | 'name' | 'buildHost'>): string {
    const host = app.buildHost || buildHostFor(app.project, app.name, this.hosts.names('build'));
    if (!host) throw new BuildFailure('schedule', 'this cluster has no host with the build role; add one (mlink host add NAME ADDRESS --roles build) or give the control plane\'s host the build role in mlink.yaml', []);
    return host;
  }

  /** What `app` builds to on `host`: its image named for the registry as that host reaches it. */
  target(app: Pick<DesiredApp, 'project' | 'name' | 'image' | 'build'>, host: string): BuildTarget {
    let registry: string;
    try { registry = this.hosts.registryFor(host); } catch (e) { throw new BuildFailure('schedule', (e as Error).message, []); }
    return { project: app.project, name: app.name, image: atRegistry(registry, app.image), build: app.build! };
  }

  async build(app: DesiredApp, host: string, onProgress?: (p: string) => void): Promise<BuildOutcome> {
    const builder = this.builderOn(host);
    const outcome = await builder.build(this.target(app, host), onProgress);
    if (this.hosts.names('runtime').some((h) => h !== host)) await builder.inRegistry(outcome.image);
    return outcome;
  }

  /** Whether the app's build host has its image already. */
  async has(app: DesiredApp): Promise<boolean> {
    const host = this.hostOf(app);
    return this.builderOn(host).has(this.target(app, host));
  }

  /** Starts `app`'s build on its build host without waiting (a commit just landed: see early.ts). */
  start(app: DesiredApp): void {
    const host = this.hostOf(app);
    this.builderOn(host).build(this.target(app, host)).catch(() => undefined);
  }

  /** Removes sandboxes and pending tags an earlier worker of this cluster left on every build host. */
  async removeLeftovers(): Promise<void> {
    await Promise.all(this.hosts.names('build').map((h) => this.builderOn(h).removeLeftovers()));
  }

  async close(): Promise<void> {
    const all = [...this.builders.values()];
    this.builders.clear();
    await Promise.all(all.map((b) => b.builder.close().catch(() => undefined)));
  }

  /** The builder on `name`; a new one when the pool reconnected the host (moved, new key). */
  private builderOn(name: string): Builder {
    const host = this.hosts.get(name);
    const known = this.builders.get(name);
    if (known?.host === host) return known.builder;
    if (known) void known.builder.close().catch(() => undefined);
    const builder = new Builder({ ...this.deps, docker: host.docker, remote: host.address !== 'local', log: this.deps.log.child({ host: name }) });
    this.builders.set(name, { host, builder });
    return builder;
  }
}
