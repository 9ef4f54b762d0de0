// The step vocabulary: ops and streams, the registry of named schedules, the step settings and
// their one conversion to and from the proto's StepOptions. Pure data: no I/O, no processes.
export * from './ops';
export * from './codecs';
export * from './format';
export * from './registry';
export * from './settings';
export * from './wire';
export * from './pipeline';
