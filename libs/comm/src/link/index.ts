export { ShapedTransport, frameBytes, type HostBoundReport } from './shaped-transport';
