/**
 * Wire codecs of the all-to-alls, by name: the one list the CLI, the queue, the scheduler and the
 * worker take their choices from. The arithmetic of each lives in `@moe/comm`'s codec folder.
 */
export const CODEC_NAMES = ['f32', 'bf16', 'fp8'] as const;
export type CodecName = (typeof CODEC_NAMES)[number];

/** Dispatch moves activations forward: fp8 (e4m3, one scale per 128 values) is allowed. */
export const DISPATCH_CODECS = ['f32', 'bf16', 'fp8'] as const satisfies readonly CodecName[];
export type DispatchCodecName = (typeof DISPATCH_CODECS)[number];

/** Combine and both backward all-to-alls carry outputs and gradients: f32 or bf16. */
export const COMBINE_CODECS = ['f32', 'bf16'] as const satisfies readonly CodecName[];
export type CombineCodecName = (typeof COMBINE_CODECS)[number];

/** The proto's `DType` value that carries each codec. */
export const CODEC_WIRE = { f32: 'F32', bf16: 'BF16', fp8: 'FP8_E4M3' } as const satisfies Record<CodecName, string>;

/** True for a codec that rounds values (the run is not bit-exact against f32). */
export const isLossyCodec = (codec: CodecName): boolean => codec !== 'f32';
