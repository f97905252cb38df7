// `mlink doctor`, sandbox part: for every app container ml.ink runs, the runtime and the
// zero-trust settings it really got; for every cluster with project networks, whether
// its egress rules are in place. It only looks; the reconciler puts things right.
import { LocalHost, type Host } from '../reconciler/hosts/host.js';
import { checkEgress } from '../reconciler/hosts/egress.js';
import { LABEL, MANAGED_BY } from '../reconciler/model.js';
import type { Check } from './doctor.js';

const FIX = 'the reconciler puts it right on its next pass (`npx mlink up`, or the MCP `sync` tool)';

export async function sandboxChecks(host: Host = new LocalHost()): Promise<Check[]> {
  const { docker } = host;
  const out: Check[] = [];
  const list = await docker.listContainers({ all: true, filters: { label: [`${LABEL.managedBy}=${MANAGED_BY}`, `${LABEL.kind}=App`] } });
  for (const c of list.sort((a, b) => (a.Names[0] ?? '').localeCompare(b.Names[0] ?? ''))) {
    const info = await docker.getContainer(c.Id).inspect().catch(() => undefined);
    if (!info) continue;
    const h = info.HostConfig;
    const l = info.Config.Labels;
    const gaps = [
      !(h.Memory && h.Memory > 0) && 'no memory limit',
      !(h.PidsLimit && h.PidsLimit > 0) && 'no pids limit',
      !(h.NanoCpus && h.NanoCpus > 0) && 'no cpu limit',
      !(h.CapDrop ?? []).includes('ALL') && 'capabilities kept',
      !(h.SecurityOpt ?? []).includes('no-new-privileges') && 'new privileges allowed',
      (h.Privileged || (h.Binds ?? []).length > 0 || info.Mounts.some((m) => m.Type === 'bind')) && 'host path mounted',
    ].filter((g): g is string => typeof g === 'string');
    const runtime = h.Runtime ?? 'runc';
    out.push({
      component: `app ${l[LABEL.cluster]}/${l[LABEL.project]}/${l[LABEL.name]}#${l[LABEL.replica] ?? 0}`,
      ok: gaps.length === 0,
      version: runtime,
      address: info.State.Running ? 'running' : info.State.Status,
      detail: gaps.length ? gaps.join(', ') : [
        runtime === 'runsc' ? 'gVisor' : `${runtime} (allowed for this project in mlink.yaml)`,
        `${Math.round((h.Memory ?? 0) / 2 ** 20)} MiB, ${h.PidsLimit} pids, ${(h.NanoCpus ?? 0) / 1e9} cpu`,
        'no capabilities', h.ReadonlyRootfs ? 'read-only root' : 'writable root',
      ].join(', '),
      fix: gaps.length ? FIX : undefined,
    });
  }
  for (const e of await checkEgress(host)) {
    out.push({ component: `egress ${e.cluster}`, ok: e.ok, version: 'iptables', address: 'DOCKER-USER, INPUT', detail: e.detail, fix: e.ok ? undefined : FIX });
  }
  return out;
}
