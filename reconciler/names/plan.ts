// names, planned: every pass ends with one action that brings apps' certificates and DNS
// records to where the apps run now (the runtime hosts their replicas are placed on).
// Pure: the action is plain data, like every other in a plan.
import { appsOf, keyFields, type DesiredState } from '../model.js';
import type { Action } from '../plan/actions.js';
import type { NamesConfig } from '../source/names.js';

export function namesAction(desired: DesiredState, config: NamesConfig): Action {
  const apps = appsOf(desired.resources).map((a) => ({
    ...keyFields(a), domains: [...a.domains], hosts: [...new Set(a.placement.slice(0, a.replicas))].sort(),
  }));
  return {
    type: 'ensureNames', config, apps, held: desired.held.filter((h) => h.kind === 'App').map(keyFields),
    reason: `certificates${config.dns ? ' and DNS records' : ''} follow the apps, and are renewed before they expire`,
  };
}
