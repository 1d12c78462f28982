export { PodVolumeManager, type PodVolumeManagerOptions } from './pod-volume-manager.js';
