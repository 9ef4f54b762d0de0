/** A model config survives the wire: to its message, protobuf bytes and back, then validation. */
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { parseModelConfig, TINY_MODEL } from '@moe/model';
import { describe, expect, it } from 'vitest';
import { modelConfigFromMsg, modelConfigMsg, PROTO_FILE, PROTO_ROOT, type ModelConfigMsgOut } from '../src/index';

const root = protobuf.loadSync(join(PROTO_ROOT, PROTO_FILE));
const ModelConfigType = root.lookupType('moe.v1.ModelConfig');
const convert = { longs: Number, enums: String, defaults: true } as const;
const throughBytes = (msg: object): ModelConfigMsgOut =>
  ModelConfigType.toObject(ModelConfigType.decode(ModelConfigType.encode(ModelConfigType.fromObject(msg)).finish()), convert) as ModelConfigMsgOut;

describe('model config on the wire', () => {
  it('keeps every field, node-limited routing included', () => {
    const config = parseModelConfig({ ...TINY_MODEL, routedExperts: 16, topK: 4, routerGroups: 4, routerGroupTopK: 2, scoreFunction: 'sigmoid' });
    expect(parseModelConfig(modelConfigFromMsg(throughBytes(modelConfigMsg(config))))).toEqual(config);
  });

  it('reads unset routing groups (a sender from before node-limited routing) as no grouping', () => {
    const msg = modelConfigMsg(TINY_MODEL) as Record<string, unknown>;
    delete msg['routerGroups'];
    delete msg['routerGroupTopK'];
    const back = parseModelConfig(modelConfigFromMsg(throughBytes(msg)));
    expect([back.routerGroups, back.routerGroupTopK]).toEqual([1, 1]);
  });
});
