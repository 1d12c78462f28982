export { ContentStore, type BlobInfo, type BlobSource } from './content.js';
export { loadRegistriesConfig, parseRegistriesConfig, emptyRegistriesConfig, planEndpoints, isLoopbackHost, type RegistriesConfig, type RegistryAuth, type Endpoint } from './config.js';
export * from './errors.js';
export { buildImageArchive, importArchive, tarDirectory, type BuildImageOptions } from './import.js';
export { MediaType, hostPlatform, type ImageConfig, type Platform, type Descriptor } from './manifest.js';
export { parseReference, formatReference, repositoryName, type Reference } from './reference.js';
export { RegistryClient, TokenCache } from './registry.js';
export { ImageStore, type Image, type ImageStoreOptions, type LayerStream, type FsUsage, type PullOptions, type PullProgress, type InUse } from './store.js';
