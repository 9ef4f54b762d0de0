/** `moe plan`: an EPLB placement (redundant experts) from a loads file, as a table and as JSON. */
import { readFileSync, writeFileSync } from 'node:fs';
import { Command } from 'commander';
import { formatPlan, parseLoads, planSummary, PlacementError, rebalanceExperts } from '@moe/placement';
import { integer } from './flags';

interface PlanFlags {
  replicas?: number;
  groups: number;
  nodes: number;
  gpus: number;
  json: boolean;
  out?: string;
}

/** Adds `plan` to `program`; the action sets `process.exitCode` (2 on bad input, through onError). */
export function addPlanCommand(program: Command, onError: (error: unknown) => number): void {
  program
    .command('plan')
    .description(
      'compute an EPLB placement (redundant experts packed onto GPUs, hierarchical or global policy) from per-expert loads; prints a table, or JSON with --json',
    )
    .argument('<loads.json>', '[layers][experts] tokens per expert, one layer [..], or an object with "expertLoads" (report.json) or "loads"')
    .requiredOption('--gpus <n>', 'GPUs (ranks)', integer('--gpus', 1))
    .option('--replicas <n>', 'physical experts per layer, a multiple of --gpus (default: the experts rounded up to a multiple of --gpus)', integer('--replicas', 1))
    .option('--groups <n>', 'expert groups of node-limited routing (1: ungrouped)', integer('--groups', 1), 1)
    .option('--nodes <n>', 'server nodes', integer('--nodes', 1), 1)
    .option('--json', 'print the plan as JSON (physicalToLogical, logicalToPhysical, logicalCount, gpuLoads, imbalance)', false)
    .option('--out <file>', 'also write the JSON plan to this file')
    .action((file: string, flags: PlanFlags) => {
      try {
        let text: string;
        try {
          text = readFileSync(file, 'utf8');
        } catch (error) {
          throw new PlacementError(`cannot read loads file ${file}: ${(error as Error).message}`);
        }
        const weight = parseLoads(text, file);
        const experts = weight[0]!.length;
        const replicas = flags.replicas ?? Math.ceil(experts / flags.gpus) * flags.gpus;
        const options = { replicas, groups: flags.groups, nodes: flags.nodes, gpus: flags.gpus };
        const summary = planSummary(weight, options, rebalanceExperts(weight, options));
        const json = JSON.stringify(summary, null, 2);
        if (flags.out) writeFileSync(flags.out, `${json}\n`);
        console.log(flags.json ? json : formatPlan(weight, summary));
        process.exitCode = 0;
      } catch (error) {
        process.exitCode = onError(error);
      }
    });
}
