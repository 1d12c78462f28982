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
  /** The pod sandbox's network namespace file (a bind-mounted nsfs file or /proc/<pid>/ns/net). */
  podNetns(podSandboxId: string): Promise<string>;
}

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
