// Named Docker volumes for database data. Made with the caller's labels and looked up by
// name; removing one is only for throwaway volumes (restore drills): a database's data
// volume is removed by a human's purge, never by the reconciler.
import type Docker from 'dockerode';

function statusOf(e: unknown): number | undefined {
  return (e as { statusCode?: number }).statusCode;
}

export interface VolumeInfo { name: string; labels: Record<string, string>; createdAt?: string; sizeBytes?: number }

/** Makes the volume when missing. An existing one is kept as it is (its data is the point), and its labels returned. */
export async function ensureVolume(docker: Docker, name: string, labels: Record<string, string>): Promise<VolumeInfo> {
  try {
    const v = await docker.getVolume(name).inspect();
    return { name, labels: v.Labels ?? {}, createdAt: (v as { CreatedAt?: string }).CreatedAt };
  } catch (e) {
    if (statusOf(e) !== 404) throw e;
  }
  const v = (await docker.createVolume({ Name: name, Driver: 'local', Labels: labels })) as unknown as { Name?: string; Labels?: Record<string, string>; CreatedAt?: string };
  return { name, labels: v.Labels ?? labels, createdAt: v.CreatedAt };
}

export async function volumeExists(docker: Docker, name: string): Promise<boolean> {
  try {
    await docker.getVolume(name).inspect();
    return true;
  } catch (e) {
    if (statusOf(e) === 404) return false;
    throw e;
  }
}

/** Sizes of the named volumes, from Docker's disk-usage report (one call, slow on hosts with many images; for list_databases). */
export async function volumeSizes(docker: Docker, names: string[]): Promise<Record<string, number>> {
  const df = (await docker.df()) as { Volumes?: Array<{ Name: string; UsageData?: { Size: number } }> };
  const out: Record<string, number> = {};
  for (const v of df.Volumes ?? []) if (names.includes(v.Name) && v.UsageData && v.UsageData.Size >= 0) out[v.Name] = v.UsageData.Size;
  return out;
}

/** Removes a throwaway volume (a drill's); absent is fine. */
export async function removeVolume(docker: Docker, name: string): Promise<void> {
  try {
    await docker.getVolume(name).remove({ force: true });
  } catch (e) {
    if (statusOf(e) !== 404) throw e;
  }
}
