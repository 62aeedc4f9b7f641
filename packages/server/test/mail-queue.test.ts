/**
 * The mail queue's bounds while the SMTP server is slow (a real SMTP server, smtp-server, that accepts
 * connections and does not greet until the test lets it). Messages anyone can make us send (reset links
 * from POST /password/forgot, verification links from POST /email/verify/resend, address-change links)
 * share 1000 slots, at most 750 of one kind; notices to an account's owner (security_notice,
 * email_changed) may also use 250 more that requests never get. So no flood of requests keeps the owner
 * from hearing that a passkey was added or the address moved, and the whole stays within 1250.
 */
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createMailer, type Mailer, type OutgoingMail } from '../src/mail/mailer.ts';
import type { TemplateName } from '../src/mail/templates.ts';

interface SilentSmtp {
  url: string;
  /** Recipients (RCPT TO, lowercased) of the messages accepted once opened. */
  received: string[];
  /** From now on, greets waiting and new connections and accepts every message. */
  open(): void;
  close(): Promise<void>;
}

/** An SMTP server that takes connections and never says a word (no 220 greeting) until open(). */
async function startSilentSmtp(): Promise<SilentSmtp> {
  const held: Array<() => void> = [];
  const received: string[] = [];
  let opened = false;
  const server = new SMTPServer({
    disabledCommands: ['STARTTLS', 'AUTH'],
    authOptional: true,
    logger: false,
    // On close, connections still silent get a 421 at once instead of after 30 s.
    closeTimeout: 50,
    onConnect(_session, callback) {
      if (opened) callback();
      else held.push(() => callback());
    },
    onData(stream, session, callback) {
      stream.on('data', () => {});
      stream.on('end', () => {
        for (const recipient of session.envelope.rcptTo) received.push(recipient.address.toLowerCase());
        callback();
      });
    },
  });
  server.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.server.address() as AddressInfo;
  return {
    url: `smtp://127.0.0.1:${port}`,
    received,
    open() {
      opened = true;
      for (const greet of held.splice(0)) greet();
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const VALUES = { name: '', email: 'x@example.com', link: 'https://auth.example.com/x?token=t', expires: '15 minutes', new_email: 'new@example.com' };

function mail(template: TemplateName, address: string): OutgoingMail {
  return template === 'security_notice'
    ? { to: { name: '', address }, template, values: { ...VALUES, event: 'a passkey was added', time: '2026-06-01T12:00:00.000Z' } }
    : { to: { name: '', address }, template, values: VALUES };
}

/** Sends `template` messages until the queue refuses one; how many it took. */
function flood(mailer: Mailer, template: TemplateName, limit = 5_000): number {
  for (let taken = 0; taken < limit; taken += 1) {
    if (!mailer.send(mail(template, `${template}-${taken}@example.com`))) return taken;
  }
  throw new Error(`the queue took ${limit} ${template} messages and refused none`);
}

/** A deferred lookup (as the public routes run after their answer) that holds its slot until `gate` resolves. */
function deferUntil(mailer: Mailer, kind: TemplateName, gate: Promise<void>): void {
  mailer.afterAnswer(() => gate, kind);
}

async function until(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('mail queue: requests anyone can trigger never crowd out notices to the account owner', () => {
  let smtp: SilentSmtp;
  let mailer: Mailer | undefined;
  let logs: Array<{ message: string; fields: Record<string, unknown> }>;
  const gates: Array<() => void> = [];
  /** A promise deferred lookups wait for, and its release (also run after each test). */
  const gate = () => {
    let release!: () => void;
    const promise = new Promise<void>((resolve) => (release = resolve));
    gates.push(release);
    return { promise, release };
  };

  beforeEach(async () => {
    smtp = await startSilentSmtp();
    logs = [];
  });
  afterEach(async () => {
    // The server starts answering and held lookups end: everything the queue took is delivered and every slot comes back.
    smtp.open();
    for (const release of gates.splice(0)) release();
    if (mailer) {
      await mailer.idle();
      expect(mailer.stats()).toMatchObject({ queued: 0, failed: 0 });
      await mailer.close();
    }
    mailer = undefined;
    await smtp.close();
  });

  const start = () => {
    mailer = createMailer(
      { production: false, mail: { smtpUrl: smtp.url, from: 'Gatehouse <no-reply@example.com>', templatesDir: undefined } },
      { log: (_level, fields, message) => logs.push({ message, fields }) },
    );
    return mailer;
  };

  it('a flood of reset_password and verify_email (messages and deferred lookups) filling the queue does not stop a security notice or an email-changed notice', async () => {
    const queue = start();
    const { promise: held, release } = gate();
    // The attack: forgot-password and verification-resend requests for accounts the attacker signed up,
    // while SMTP does not answer. Their deferred lookups count under the kind they may send.
    for (let i = 0; i < 300; i += 1) deferUntil(queue, 'reset_password', held);
    expect(flood(queue, 'reset_password')).toBe(450); // 750 of one kind
    for (let i = 0; i < 100; i += 1) deferUntil(queue, 'verify_email', held);
    expect(flood(queue, 'verify_email')).toBe(150); // all 1000 request slots taken
    expect(queue.stats()).toMatchObject({ queued: 1000, dropped: 2 });

    // The owner's notices still go in: sent directly (email_changed after POST /email/change/confirm or an
    // admin's change), and as notifySecurityEvent does it, a deferred lookup that then sends the message.
    expect(queue.send(mail('security_notice', 'owner@example.com'))).toBe(true);
    expect(queue.send(mail('email_changed', 'old-owner@example.com'))).toBe(true);
    let fromLookup: boolean | undefined;
    queue.afterAnswer(async () => {
      fromLookup = queue.send(mail('security_notice', 'owner2@example.com'));
    }, 'security_notice');
    await until(() => fromLookup !== undefined);
    expect(fromLookup).toBe(true);
    expect(queue.stats()).toMatchObject({ queued: 1003, dropped: 2 });
    expect(logs.filter((line) => line.message === 'mail: queue full or closing, message dropped').map((line) => line.fields.kind)).toEqual(['reset_password', 'verify_email']);

    // Accepted means delivered once the server answers: the notices are not lost behind the flood.
    smtp.open();
    release();
    await queue.idle();
    expect(smtp.received).toEqual(expect.arrayContaining(['owner@example.com', 'old-owner@example.com', 'owner2@example.com']));
    expect(queue.stats()).toMatchObject({ queued: 0, sent: 603, failed: 0, dropped: 2 });
  });

  it('the flooded kinds stay bounded: 750 of one kind, 1000 requests in all, never in the notices\' reserve; everything within 1250', async () => {
    const queue = start();
    const { promise: held, release } = gate();
    for (let i = 0; i < 50; i += 1) deferUntil(queue, 'reset_password', held);
    expect(flood(queue, 'reset_password')).toBe(700);
    // A deferred lookup that may send a reset counts with the resets: refused too.
    let ran = false;
    queue.afterAnswer(async () => {
      ran = true;
    }, 'reset_password');
    expect(flood(queue, 'verify_email')).toBe(250);
    // change_email is far below its own cap, but requests together have had their 1000.
    expect(flood(queue, 'change_email')).toBe(0);
    queue.afterAnswer(async () => {
      ran = true;
    }, 'verify_email');
    expect(queue.stats()).toMatchObject({ queued: 1000, dropped: 5 });

    // Notices take the reserve, and no more: 250 beyond the 1000.
    for (let i = 0; i < 200; i += 1) expect(queue.send(mail('security_notice', `notice-${i}@example.com`))).toBe(true);
    expect(flood(queue, 'email_changed')).toBe(50);
    queue.afterAnswer(async () => {
      ran = true;
    }, 'security_notice');
    expect(queue.stats()).toMatchObject({ queued: 1250, dropped: 7 });
    // Nothing of the 1250 is free for a request either.
    expect(flood(queue, 'reset_password')).toBe(0);
    await new Promise((resolve) => setImmediate(resolve));
    expect(ran).toBe(false);

    // The 50 deferred lookups end and give their slots back: 50 requests fit again, and no more.
    release();
    await until(() => queue.stats().queued === 1200);
    expect(flood(queue, 'change_email')).toBe(50);
    expect(flood(queue, 'reset_password')).toBe(0);
    expect(queue.stats()).toMatchObject({ queued: 1250, dropped: 10 });
  });

  it('notices are bounded too: 750 of one kind, and 1250 messages and lookups of all kinds together', () => {
    const queue = start();
    expect(flood(queue, 'security_notice')).toBe(750);
    for (let i = 0; i < 100; i += 1) expect(queue.send(mail('email_changed', `moved-${i}@example.com`))).toBe(true);
    // Requests take what is left of the 1250 (fewer than their 1000), and then nothing fits.
    expect(flood(queue, 'reset_password')).toBe(400);
    expect(queue.stats()).toMatchObject({ queued: 1250, dropped: 2 });
    expect(flood(queue, 'verify_email')).toBe(0);
    expect(flood(queue, 'email_changed')).toBe(0);
    expect(queue.stats()).toMatchObject({ queued: 1250, dropped: 4 });
  });
});
