export {
  LinkModelError,
  linkClassOf,
  modeledTransferMs,
  validateLinkModel,
  wireMs,
  type LinkClass,
  type LinkModel,
  type LinkSharing,
  type LinkSpec,
} from './link-model';
export { ShapedTransport, frameBytes, type HostBoundReport } from './shaped-transport';
