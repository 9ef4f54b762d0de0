/**
 * What an error log line carries beyond its message: the error's class (`errClass`, its `name`:
 * WorkerLostError, RendezvousTimeoutError, ...), `err` (pino serializes it: type, message,
 * stack, own fields such as a gRPC `code`), and `numbers`: the figures its message already names, so a
 * query can filter on them without parsing text ("waited 800 ms for 6 workers; 4 registered" ->
 * `{ ms: 800, workers: 6, registered: 4 }`; "top_k=9 exceeds experts=8" -> `{ top_k: 9, experts: 8 }`).
 */

// `name=3`, `name: 3`: the number belongs to the name before it.
const NAMED_BEFORE = /([A-Za-z_][\w.]*)\s?[=:]\s?(-?\d+(?:\.\d+)?)(?![\w.])/g;
// `step 3`, `rank 1`, `attempt 2`: a word that counts, then its number.
const COUNTING_WORD = /\b(step|rank|layer|chunk|attempt|micro-batch|port|pid|code)\s+(-?\d+)\b/gi;
// `800 ms`, `6 workers`, `4 registered`: a number, then what it counts.
const NUMBER_THEN_UNIT = /(?<![\w.=:-])(-?\d+(?:\.\d+)?)\s(ms|s|bytes|MiB|GiB|workers?|ranks?|steps?|attempts?|registered|tokens?|experts?)\b/g;

/** The figures `message` names, by the word that names each; the first of a name wins. */
export function numbersIn(message: string): Record<string, number> {
  const out: Record<string, number> = {};
  const put = (name: string, value: string) => {
    if (!(name in out)) out[name] = Number(value);
  };
  for (const [, name, value] of message.matchAll(NAMED_BEFORE)) put(name!, value!);
  for (const [, name, value] of message.matchAll(COUNTING_WORD)) put(name!.toLowerCase(), value!);
  for (const [, value, unit] of message.matchAll(NUMBER_THEN_UNIT)) put(unit!, value!);
  return out;
}

export interface ErrorFields {
  errClass: string;
  /** The error itself: pino's `err` serializer writes its type, message, stack and own fields. */
  err: Error;
  numbers?: Record<string, number>;
}

export function errorFields(error: unknown): ErrorFields {
  const e = error instanceof Error ? error : new Error(String(error));
  const numbers = numbersIn(e.message);
  return { errClass: e.name, err: e, ...(Object.keys(numbers).length ? { numbers } : {}) };
}
