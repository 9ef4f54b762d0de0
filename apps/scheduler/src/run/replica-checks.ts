/**
 * Redundant experts stay identical: after every update each rank holding a copy of a replicated
 * expert reports the copy's checksum (RunStepResponse.replica_checksums), and the scheduler
 * compares the holders' as it compares the dense parameters'. A copy that drifted (gradients not
 * summed, a lost update) stops the run naming the expert, the layer and the ranks.
 */
import { WorkerRpcError, ChecksumMismatchError } from '../errors';

export interface ReplicaChecksumReply {
  layer: number;
  expert: number;
  checksum: string;
}

/**
 * @param reported [W] each rank's replica checksums, index = rank
 * @param holders [E] ranks holding each expert, ascending (an expert with more than one is checked)
 * @throws WorkerRpcError (code -1) when a holder did not report a copy it holds (a worker that ignores
 *   redundant experts), or reported one it does not hold; ChecksumMismatchError when copies differ
 */
export function assertReplicasAgree(reported: readonly (readonly ReplicaChecksumReply[])[], holders: readonly (readonly number[])[], layers: number, step: number, when: string): void {
  const byKey = new Map<string, Map<number, string>>();
  reported.forEach((list, rank) => {
    for (const r of list) {
      if (!holders[r.expert]?.includes(rank) || holders[r.expert]!.length < 2 || r.layer >= layers) {
        throw new WorkerRpcError(`${when}: rank ${rank} reported a replica checksum of expert ${r.expert} of layer ${r.layer}, which is not a redundant expert it holds`, rank, 'RunStep', -1);
      }
      const key = `${r.layer}/${r.expert}`;
      if (!byKey.has(key)) byKey.set(key, new Map());
      byKey.get(key)!.set(rank, r.checksum);
    }
  });
  holders.forEach((ranks, expert) => {
    if (ranks.length < 2) return;
    for (let layer = 0; layer < layers; layer++) {
      const sums = byKey.get(`${layer}/${expert}`) ?? new Map<number, string>();
      const missing = ranks.find((rank) => !sums.has(rank));
      if (missing !== undefined) {
        throw new WorkerRpcError(
          `${when}: rank ${missing} holds a copy of expert ${expert} (layer ${layer}) but reported no checksum of it; does its worker run redundant experts?`,
          missing,
          'RunStep',
          -1,
        );
      }
      const first = sums.get(ranks[0]!)!;
      const differing = ranks.filter((rank) => sums.get(rank) !== first);
      if (differing.length === 0) continue;
      const described = ranks.map((rank) => `rank ${rank} has ${sums.get(rank)}`).join(', ');
      throw new ChecksumMismatchError(
        `${when}: the copies of expert ${expert} of layer ${layer} diverged (${described}); ${differing.length > 1 ? 'ranks' : 'rank'} ${differing.join(', ')} ${differing.length > 1 ? 'disagree' : 'disagrees'} with rank ${ranks[0]}, stopping the run`,
        step,
        differing,
        { layer, expert },
      );
    }
  });
}
