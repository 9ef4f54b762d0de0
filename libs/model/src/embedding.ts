/** Token embedding lookup and its gradient. Tokens are ids in [0, V). */
import { ShapeError } from './shape-error';
import { matrixShape, zeros, type Tensor } from './tensor';

/** tokens: [T] ids in [0, V), table: [V, H] -> x: [T, H] with x[t] = table[tokens[t]]. */
export function embed(tokens: Int32Array, table: Tensor): Tensor {
  const [V, H] = matrixShape(table, 'embed: table');
  const x = zeros([tokens.length, H]);
  for (let t = 0; t < tokens.length; t++) {
    const id = tokens[t]!;
    if (id < 0 || id >= V) throw new ShapeError(`embed: token ${t} is ${id}, vocabulary has ${V} ids`);
    x.data.set(table.data.subarray(id * H, (id + 1) * H), t * H);
  }
  return x;
}

/** tokens: [T], dy: [T, H] -> dTable: [V, H], dTable[v] = Σ_{t: tokens[t] = v} dy[t] (t ascending). */
export function embedBackward(tokens: Int32Array, dy: Tensor, vocabSize: number): Tensor {
  const [T, H] = matrixShape(dy, 'embedBackward: dy');
  if (T !== tokens.length) throw new ShapeError(`embedBackward: dy has ${T} rows for ${tokens.length} tokens`);
  const acc = new Float64Array(vocabSize * H);
  for (let t = 0; t < T; t++) {
    const id = tokens[t]!;
    if (id < 0 || id >= vocabSize) throw new ShapeError(`embedBackward: token ${t} is ${id}, vocabulary has ${vocabSize} ids`);
    for (let i = 0; i < H; i++) acc[id * H + i]! += dy.data[t * H + i]!;
  }
  return { shape: [vocabSize, H], data: Float32Array.from(acc) };
}
