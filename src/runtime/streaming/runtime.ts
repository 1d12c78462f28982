import type { Duplex } from 'node:stream';
import type { ExecOptions, ExecSession } from '../handler.js';

/** A running exec or attach as the streaming server drives it (resize: its terminal's size, with a tty). */
export type StreamSession = ExecSession;

/**
 * What the streaming server needs from the runtime, looked up when a client connects (not when the
 * URL is issued): the RuntimeService implements it over its handlers and sandboxes.
 */
export interface StreamingRuntime {
  exec(containerId: string, cmd: string[], options: ExecOptions): Promise<StreamSession>;
  /** Connects to the container's main process I/O; absent when the runtime cannot attach. */
  attach?(containerId: string, options: ExecOptions): Promise<StreamSession>;
  /**
   * How to reach ports on the pod sandbox's loopback: usually a relay in its network namespace
   * (dialInNetns); a pod whose network stack lives elsewhere (a runv VM) has its handler's way.
   */
  portDialer(podSandboxId: string): Promise<PortDialer>;
}

/** Opens a TCP connection to `port` inside the pod. */
export type PortDialer = (port: number) => Promise<Duplex>;

/** CRI's ExecRequest, AttachRequest and PortForwardRequest, as the URL's token remembers them. */
export interface ExecRequest {
  containerId: string;
  cmd: string[];
  tty: boolean;
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
}

export type AttachRequest = Omit<ExecRequest, 'cmd'>;

export interface PortForwardRequest {
  podSandboxId: string;
  /** Ports to forward when the client's URL names none (?port=N&port=M). */
  ports: number[];
}

export type PendingRequest =
  | ({ kind: 'exec' } & ExecRequest)
  | ({ kind: 'attach' } & AttachRequest)
  | ({ kind: 'portforward' } & PortForwardRequest);
