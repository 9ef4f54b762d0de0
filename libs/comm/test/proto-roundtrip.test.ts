import { Buffer } from 'node:buffer';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { loadMoeProto, PROTO_FILE, PROTO_ROOT } from '../src/index';

/**
 * Every message of moe.proto survives encode -> decode, with protobufjs directly and through the
 * gRPC method serializers of every service method. Samples set every field to a non-default value
 * (one sample per member of each oneof), so a field the wire drops or garbles shows up.
 */
const root = protobuf.loadSync(join(PROTO_ROOT, PROTO_FILE));
root.resolveAll();
const pkg = root.lookup('moe.v1') as protobuf.Namespace;
const messageTypes = pkg.nestedArray.filter((n): n is protobuf.Type => n instanceof protobuf.Type);
const services = pkg.nestedArray.filter((n): n is protobuf.Service => n instanceof protobuf.Service);

function scalar(field: protobuf.Field, i: number): unknown {
  switch (field.type) {
    case 'double':
      return 1.5 + i;
    case 'float':
      return 0.25 + i;
    case 'int32':
    case 'sint32':
    case 'sfixed32':
      return -7 - i;
    case 'int64':
    case 'sint64':
    case 'sfixed64':
      return -1_234_567_890_123 - i;
    case 'uint32':
    case 'fixed32':
      return 7 + i;
    case 'uint64':
    case 'fixed64':
      return 1_234_567_890_123 + i;
    case 'bool':
      return true;
    case 'string':
      return `${field.name}-${i}`;
    case 'bytes':
      return Buffer.from([1, 2, 3, 250 - i]);
    default:
      throw new Error(`no sample for field ${field.fullName} of type ${field.type}`);
  }
}

function value(field: protobuf.Field, i: number, depth: number): unknown {
  const t = field.resolvedType;
  if (t instanceof protobuf.Enum) {
    const names = Object.keys(t.values);
    return names[Math.min(names.length - 1, 1 + (i % (names.length - 1)))];
  }
  if (t instanceof protobuf.Type) return samples(t, depth + 1)[0];
  return scalar(field, i);
}

/** Populated samples of `type`: every field set, one sample per member of each oneof. */
function samples(type: protobuf.Type, depth = 0): Record<string, unknown>[] {
  if (depth > 6) throw new Error(`message nesting too deep at ${type.fullName}`);
  const base: Record<string, unknown> = {};
  for (const field of type.fieldsArray) {
    if (field.partOf) continue;
    base[field.name] = field.repeated ? [value(field, 0, depth), value(field, 1, depth)] : value(field, 0, depth);
  }
  if (type.oneofsArray.length === 0) return [base];
  const out: Record<string, unknown>[] = [];
  for (const oneof of type.oneofsArray) {
    for (const member of oneof.fieldsArray) out.push({ ...base, [member.name]: value(member, 0, depth), __oneof: [oneof.name, member.name] });
  }
  return out;
}

const strip = ({ __oneof, ...rest }: Record<string, unknown>): Record<string, unknown> => rest;

describe('proto round trip', () => {
  it('finds the messages and services of moe.v1', () => {
    expect(messageTypes.map((t) => t.name)).toEqual(expect.arrayContaining(['Tensor', 'Frame', 'PeerMessage', 'PeerAck', 'LoadShardRequest', 'RunStepResponse']));
    expect(services.map((s) => s.name).sort()).toEqual(['Peer', 'Scheduler', 'Worker']);
  });

  for (const type of messageTypes) {
    it(`${type.name}: every field survives protobufjs encode and decode`, () => {
      for (const sample of samples(type)) {
        const plain = strip(sample);
        const message = type.fromObject(plain);
        expect(type.verify(message)).toBeNull();
        const bytes = type.encode(message).finish();
        const back = type.toObject(type.decode(bytes), { longs: Number, enums: String, oneofs: true });
        expect(back).toMatchObject(plain);
        if (sample.__oneof) {
          const [oneof, member] = sample.__oneof as [string, string];
          expect(back[oneof]).toBe(member);
        }
      }
    });
  }

  const grpcPkg = loadMoeProto().moe.v1 as unknown as Record<string, { service: Record<string, GrpcMethod> }>;
  interface GrpcMethod {
    requestSerialize: (v: unknown) => Buffer;
    requestDeserialize: (b: Buffer) => Record<string, unknown>;
    responseSerialize: (v: unknown) => Buffer;
    responseDeserialize: (b: Buffer) => Record<string, unknown>;
  }
  for (const service of services) {
    for (const method of service.methodsArray) {
      it(`${service.name}.${method.name}: the gRPC serializers round-trip request and response`, () => {
        const definition = grpcPkg[service.name]!.service[method.name]!;
        method.resolve();
        const cases = [
          [method.resolvedRequestType!, definition.requestSerialize, definition.requestDeserialize],
          [method.resolvedResponseType!, definition.responseSerialize, definition.responseDeserialize],
        ] as const;
        for (const [type, serialize, deserialize] of cases) {
          for (const sample of samples(type)) {
            const back = deserialize(serialize(strip(sample)));
            expect(back).toMatchObject(strip(sample));
            if (sample.__oneof) {
              const [oneof, member] = sample.__oneof as [string, string];
              expect(back[oneof]).toBe(member);
            }
          }
        }
      });
    }
  }
});
