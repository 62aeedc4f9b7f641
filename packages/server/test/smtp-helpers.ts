import type { AddressInfo } from 'node:net';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer, type SMTPServerEnvelope } from 'smtp-server';

/** A message the test SMTP server accepted: as parsed by mailparser, its raw source, and the SMTP envelope. */
export interface ReceivedMessage {
  parsed: ParsedMail;
  raw: string;
  envelope: SMTPServerEnvelope;
  /** The recipients as the envelope named them (RCPT TO), lowercased. */
  recipients: string[];
}

export interface TestMailbox {
  /** SMTP_URL for the app: smtp://127.0.0.1:<port>. */
  url: string;
  messages: ReceivedMessage[];
  /** The next message to this address not taken yet, waiting for it (up to timeoutMs). */
  next(to: string, timeoutMs?: number): Promise<ReceivedMessage>;
  /** Messages to this address received so far, taken or not. */
  to(address: string): ReceivedMessage[];
  /** Answers the next `count` messages with this SMTP error instead of accepting them (a 4xx or 5xx code). */
  refuseNext(count: number, code: number, message?: string): void;
  close(): Promise<void>;
}

/**
 * A real SMTP server (smtp-server) on a free port of 127.0.0.1, without TLS or authentication, that
 * keeps every message it accepts, parsed by mailparser. Used by the flows that send mail.
 */
export async function startTestMailbox(): Promise<TestMailbox> {
  const messages: ReceivedMessage[] = [];
  const taken = new Set<ReceivedMessage>();
  const waiters: Array<() => void> = [];
  let refusals: { count: number; code: number; message: string } | undefined;

  const server = new SMTPServer({
    // Plain SMTP on loopback: no certificate for nodemailer to distrust.
    disabledCommands: ['STARTTLS', 'AUTH'],
    authOptional: true,
    logger: false,
    size: 1024 * 1024,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('error', callback);
      stream.on('end', () => {
        if (refusals && refusals.count > 0) {
          refusals.count -= 1;
          const error = Object.assign(new Error(refusals.message), { responseCode: refusals.code });
          callback(error);
          return;
        }
        const raw = Buffer.concat(chunks).toString('utf8');
        simpleParser(raw)
          .then((parsed) => {
            const envelope = structuredClone(session.envelope);
            messages.push({ parsed, raw, envelope, recipients: envelope.rcptTo.map((address) => address.address.toLowerCase()) });
            for (const wake of waiters.splice(0)) wake();
            callback();
          })
          .catch(callback);
      });
    },
  });
  server.on('error', (error) => process.stderr.write(`test mailbox: ${error.message}\n`));
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.server.address() as AddressInfo;

  const toAddress = (address: string) => messages.filter((message) => message.recipients.includes(address.toLowerCase()));
  return {
    url: `smtp://127.0.0.1:${port}`,
    messages,
    to: toAddress,
    async next(to, timeoutMs = 5_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = toAddress(to).find((message) => !taken.has(message));
        if (found) {
          taken.add(found);
          return found;
        }
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no message to ${to} within ${timeoutMs} ms (received: ${messages.map((m) => m.recipients.join(',')).join('; ')})`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
    },
    refuseNext(count, code, message = 'try again later') {
      refusals = { count, code, message };
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The first link of the message's text part that starts with `prefix` (PUBLIC_URL and a path). */
export function linkIn(message: ReceivedMessage, prefix: string): URL {
  const text = message.parsed.text ?? '';
  const found = text.split(/\s+/).find((word) => word.startsWith(prefix));
  if (!found) throw new Error(`no link starting with ${prefix} in: ${text}`);
  return new URL(found);
}
