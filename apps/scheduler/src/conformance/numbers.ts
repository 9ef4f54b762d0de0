/**
 * The numerical verdicts of the kit: a step's loss against the reference, and where a wrong one
 * goes wrong, as far as the replies tell (each rank's share, the routing per layer, the step
 * before).
 */
import { LOSS_TOLERANCE, relative, type Run, type StepOutcome } from './kit';
import { CheckFailure } from './report';

/**
 * Where the worker's numbers of `s` leave the reference's: its loss_sum against its rank's share,
 * then the first layer whose expert_counts (the routing) differ. Counts agree in every layer: the
 * routing (embedding, norms, router) is right and the difference comes after it.
 */
export function diagnose(run: Run, s: StepOutcome): string {
  const mine = s.replies[run.rank]!;
  const share = s.expected.shares[run.rank]!;
  const parts = [`rank ${run.rank}'s loss_sum ${mine.lossSum} vs the reference's share for its tokens ${share.loss} (rel ${relative(mine.lossSum, share.loss).toExponential(1)})`];
  const E = run.model.routedExperts;
  for (let l = 0; l < run.model.layers; l++) {
    for (let e = 0; e < E; e++) {
      const got = mine.expertCounts[l * E + e]!;
      const want = share.counts[l]![e]!;
      if (got !== want) {
        parts.push(
          `the routing first differs at layer ${l}: expert ${e} got ${got} of its slots, the reference routes ${want} ` +
            `(check the embedding, RMSNorm${l > 0 ? ', the layers below' : ''} and the router: scores, bias, top-k with ties to the lower id)`,
        );
        return parts.join('; ');
      }
    }
  }
  parts.push(
    'the routing (expert_counts) agrees in every layer, so the difference comes after the router: the experts, the combine weights, the shared experts, the final norm, the head or the cross-entropy',
  );
  return parts.join('; ');
}

/**
 * Judges the losses of consecutive steps of one run. The first step whose loss is off fails,
 * with the diagnosis; when an earlier step matched, its backward or update is named as the cause.
 * @returns "loss a (reference b, rel c)" per step when all match
 */
export function judgeLosses(run: Run, steps: readonly StepOutcome[], what = ''): string {
  steps.forEach((s, i) => {
    const rel = relative(s.loss, s.expected.loss);
    if (!(rel <= LOSS_TOLERANCE)) {
      const before =
        i > 0
          ? `; step ${steps[i - 1]!.step} matched, so its forward was right and the difference comes from its backward or update (gradients, the all-reduce, AdamW, the bias)`
          : '';
      throw new CheckFailure(
        `${what}step ${s.step} (${s.settings.schedule}, dispatch ${s.settings.dispatchCodec}, combine ${s.settings.combineCodec}): ` +
          `loss ${s.loss} differs from the reference ${s.expected.loss} by ${rel.toExponential(2)} relative (tolerance ${LOSS_TOLERANCE}); ` +
          diagnose(run, s) +
          before,
      );
    }
    if (!(Math.abs(s.auxLoss - s.expected.auxLoss) <= Math.max(1e-9, LOSS_TOLERANCE * Math.abs(s.expected.auxLoss)))) {
      throw new CheckFailure(`${what}step ${s.step}: aux loss ${s.auxLoss} differs from the reference ${s.expected.auxLoss} (the sequence-wise aux loss of §2.4 and the appendix)`);
    }
  });
  return steps.map((s) => `step ${s.step} ${s.settings.schedule}: loss ${s.loss.toFixed(6)} (rel ${relative(s.loss, s.expected.loss).toExponential(1)})`).join('; ');
}
