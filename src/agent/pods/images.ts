// Making sure a container's image is on the node before it is created: pull policy, pull
// secrets, pull back-off, and the events the kubelet records on the way.
import type { KubeObject } from '../../api/types.js';
import type { AuthConfig, CriClient } from '../../runtime/cri/index.js';
import { Backoff, goDuration } from './backoff.js';
import { errorMessage, StartError } from './errors.js';
import { authsForImage } from './pull-secrets.js';
import { pullPolicy, type Container } from './spec.js';

export type EventSink = (type: 'Normal' | 'Warning', reason: string, message: string) => void;

export class ImagePuller {
  /** The last pull error per back-off key, which ImagePullBackOff repeats. */
  private readonly lastError = new Map<string, string>();

  constructor(
    private readonly cri: CriClient,
    readonly backoff: Backoff,
  ) {}

  /**
   * The runtime's id of the container's image, pulled first if the policy says so. Fails with a
   * StartError whose reason is ErrImagePull, ImagePullBackOff or ErrImageNeverPull.
   */
  async ensure(pod: KubeObject, container: Container, auths: () => Promise<AuthConfig[]>, event: EventSink, signal: AbortSignal): Promise<string> {
    const image = container.image ?? '';
    if (!image) throw new StartError('InvalidImageName', `container ${container.name} has no image`);
    const policy = pullPolicy(container);
    if (policy !== 'Always') {
      const present = (await this.cri.ImageStatus({ image: { image } })).image;
      if (present?.id) {
        event('Normal', 'Pulled', `Container image "${image}" already present on machine`);
        return present.id;
      }
      if (policy === 'Never') {
        const message = `Container image "${image}" is not present with pull policy of Never`;
        event('Warning', 'ErrImageNeverPull', message);
        throw new StartError('ErrImageNeverPull', message);
      }
    }
    const key = `${pod.metadata.uid}_${image}`;
    if (this.backoff.inBackoffSinceUpdate(key)) {
      const last = this.lastError.get(key);
      const message = `Back-off pulling image "${image}"${last ? `: ErrImagePull: ${last}` : ''}`;
      event('Normal', 'BackOff', message);
      throw new StartError('ImagePullBackOff', message);
    }
    event('Normal', 'Pulling', `Pulling image "${image}"`);
    const started = Date.now();
    try {
      const ref = await this.pull(image, authsForImage(image, await auths()), signal);
      this.backoff.reset(key);
      this.lastError.delete(key);
      event('Normal', 'Pulled', `Successfully pulled image "${image}" in ${goDuration(Date.now() - started)}`);
      return ref;
    } catch (err) {
      if (signal.aborted) throw err;
      const message = errorMessage(err);
      this.backoff.next(key);
      this.lastError.set(key, message);
      event('Warning', 'Failed', `Failed to pull image "${image}": ${message}`);
      throw new StartError('ErrImagePull', message);
    }
  }

  /** When the pod's pull back-off for `image` ends, if it has one. */
  backoffEnds(pod: KubeObject, image: string): number | undefined {
    return this.backoff.endsAt(`${pod.metadata.uid}_${image}`);
  }

  forgetPod(uid: string): void {
    this.backoff.resetPrefix(`${uid}_`);
    for (const key of this.lastError.keys()) if (key.startsWith(`${uid}_`)) this.lastError.delete(key);
  }

  /** Each matching credential in turn, as the kubelet's keyring lookup does; anonymously when none match. */
  private async pull(image: string, auths: AuthConfig[], signal: AbortSignal): Promise<string> {
    if (auths.length === 0) return (await this.cri.PullImage({ image: { image } }, { signal })).image_ref;
    let last: unknown;
    for (const auth of auths) {
      try {
        return (await this.cri.PullImage({ image: { image }, auth }, { signal })).image_ref;
      } catch (err) {
        last = err;
        if (signal.aborted) break;
      }
    }
    throw last;
  }
}
