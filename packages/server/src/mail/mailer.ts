import nodemailer from 'nodemailer';
import type { Config } from '../config.ts';
import { ConfigError, SMTP_REQUIRED_IN_PRODUCTION } from '../config.ts';
import type { SharedStateLog } from '../shared/index.ts';
import { loadTemplates, singleLine, type TemplateName, type Templates, type TemplateValues } from './templates.ts';

/** A message to one person: the template and the values it is filled with. */
export interface OutgoingMail {
  to: { name: string; address: string };
  template: TemplateName;
  /** name: empty when the address is unverified (see addresseeName in auth/email-common.ts). */
  values: Omit<TemplateValues, 'product' | 'greeting'>;
}

export interface MailerStats {
  queued: number;
  sent: number;
  failed: number;
  dropped: number;
}

export interface Mailer {
  /** `smtp` (SMTP_URL) or `log` (development without SMTP_URL: every message goes to the log, links included). */
  readonly mode: 'smtp' | 'log';
  /**
   * Queues a message and returns at once: no request waits for an SMTP server. False when the
   * queue is full (the message is dropped and logged; flows already answered the same either way).
   */
  send(mail: OutgoingMail): boolean;
  /**
   * Runs work after the current request has been answered: the user-specific part of a flow whose
   * answer must not depend on whether an address is registered (lookup, token, message) happens
   * here, so neither the body nor the time of the answer can tell. Bounded like the send queue, and
   * counted under `kind` (the message it may send).
   */
  afterAnswer(task: () => Promise<void>, kind: TemplateName): void;
  /** Resolves once every deferred task has run and every queued message was sent or given up on. */
  idle(): Promise<void>;
  stats(): MailerStats;
  close(): Promise<void>;
}

export interface MailerOptions {
  log: SharedStateLog;
  /** Waits between attempts of a message refused for a passing reason (4xx, connection lost). */
  retryDelaysMs?: readonly number[];
  /** Slots for requests (all kinds together; 1000): notices get a quarter more besides (see createMailer). */
  queueMax?: number;
}

const DEFAULT_RETRY_DELAYS_MS = [2_000, 10_000, 60_000];
const DEFAULT_QUEUE_MAX = 1_000;
const PRODUCT = 'Gatehouse';

/**
 * What each message is, for the queue's bounds. `request`: a link someone asked for (a reset, a
 * verification, a new address to confirm); anyone can make us send these, without signing in
 * (POST /password/forgot, POST /email/verify/resend) or with accounts of their own (signup, POST
 * /me/email). `notice`: tells an account's owner, at their address, that something happened to the
 * account (a sign-in factor changed, the address moved); only these may use the reserve, so no flood
 * of requests can keep the owner from hearing of a takeover. A Record: a new template must be classed.
 */
export const MAIL_KINDS: Readonly<Record<TemplateName, 'request' | 'notice'>> = Object.freeze({
  verify_email: 'request',
  reset_password: 'request',
  change_email: 'request',
  email_changed: 'notice',
  security_notice: 'notice',
});

/**
 * Production needs a way to send mail: verification and password reset depend on it, and a
 * reset message that silently went to a log would lock users out. loadConfig checks it first;
 * this guards deps built from a hand-made config.
 */
export function checkMailConfig(config: Pick<Config, 'production' | 'mail'>): void {
  if (config.production && config.mail.smtpUrl === undefined) {
    throw new ConfigError([SMTP_REQUIRED_IN_PRODUCTION]);
  }
}

export function createMailer(config: Pick<Config, 'production' | 'mail'>, options: MailerOptions): Mailer {
  checkMailConfig(config);
  const templates: Templates = loadTemplates(config.mail.templatesDir);
  const retryDelays = options.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS;
  const queueMax = options.queueMax ?? DEFAULT_QUEUE_MAX;
  const counts = { sent: 0, failed: 0, dropped: 0 };
  // No one kind of message may take the whole queue: a flood of forgot-password requests while the SMTP
  // server is slow must leave room for verification links. And no flood of requests, of any kinds, may
  // crowd out a notice: requests all together hold at most queueMax slots, and everything at most
  // queueMax + noticeReserve, so noticeReserve slots are always beyond the reach of requests. A notice is
  // refused only once notices themselves hold that many (a security notice takes two while its deferred
  // lookup runs: the lookup and the message).
  const kindMax = Math.max(1, Math.ceil(queueMax * 0.75));
  const noticeReserve = Math.max(1, Math.ceil(queueMax / 4));
  const totalMax = queueMax + noticeReserve;
  const pendingByKind = new Map<TemplateName, number>();
  // Messages and deferred tasks in flight (including those waiting for a retry): the bounds apply to them all.
  let pending = 0;
  // Of those, the ones counted under a request kind.
  let pendingRequests = 0;
  let idleWaiters: Array<() => void> = [];
  // closing: no more retries; closed: nothing new is taken.
  let closing = false;
  let closed = false;
  // Messages waiting for their next attempt, with their template (the kind they count under).
  const retryTimers = new Map<NodeJS.Timeout, TemplateName>();

  const transport = config.mail.smtpUrl
    ? nodemailer.createTransport({
        url: config.mail.smtpUrl,
        pool: true,
        maxConnections: 2,
        // A silent SMTP server must not hold messages (and memory) for nodemailer's default two minutes.
        connectionTimeout: 10_000,
        greetingTimeout: 10_000,
        socketTimeout: 30_000,
      })
    : undefined;
  // A pool reports connection trouble as an event; without a listener it would crash the process.
  transport?.on('error', (error) => options.log('warn', { reason: error.message }, 'mail: SMTP connection error'));
  if (!transport) {
    options.log('warn', {}, 'SMTP_URL is not set: messages are written to this log instead of being sent (development only; NODE_ENV=production refuses to start without it)');
  }

  function settle(kind: TemplateName) {
    pending -= 1;
    if (MAIL_KINDS[kind] !== 'notice') pendingRequests -= 1;
    const left = (pendingByKind.get(kind) ?? 1) - 1;
    if (left > 0) pendingByKind.set(kind, left);
    else pendingByKind.delete(kind);
    if (pending === 0) {
      const waiters = idleWaiters;
      idleWaiters = [];
      for (const wake of waiters) wake();
    }
  }

  function reserve(kind: TemplateName): boolean {
    // Anything not classed a notice is bounded as a request.
    const request = MAIL_KINDS[kind] !== 'notice';
    if (closed || pending >= totalMax || (request && pendingRequests >= queueMax) || (pendingByKind.get(kind) ?? 0) >= kindMax) {
      counts.dropped += 1;
      options.log('error', { queue_max: queueMax, notice_reserve: noticeReserve, kind_max: kindMax, kind }, 'mail: queue full or closing, message dropped');
      return false;
    }
    pending += 1;
    if (request) pendingRequests += 1;
    pendingByKind.set(kind, (pendingByKind.get(kind) ?? 0) + 1);
    return true;
  }

  async function deliver(mail: OutgoingMail, attempt: number): Promise<void> {
    const name = singleLine(mail.values.name);
    const rendered = templates.render(mail.template, { ...mail.values, greeting: name === '' ? 'Hello,' : `Hello ${name},`, product: PRODUCT });
    // The address as an object: nodemailer encodes the name as a quoted phrase, so no name can add a recipient or a header.
    const to = { name: singleLine(mail.to.name), address: singleLine(mail.to.address) };
    if (!transport) {
      // Development: the whole text part, links included, so the flow can be followed from the log.
      options.log('warn', { to: to.address, subject: rendered.subject, template: mail.template, text: rendered.text }, 'mail (not sent, SMTP_URL unset)');
      counts.sent += 1;
      settle(mail.template);
      return;
    }
    try {
      await transport.sendMail({
        from: config.mail.from,
        to,
        subject: rendered.subject,
        text: rendered.text,
        html: rendered.html,
        // Nothing in a message may make nodemailer read a file or fetch a URL.
        disableFileAccess: true,
        disableUrlAccess: true,
      });
      counts.sent += 1;
      settle(mail.template);
    } catch (error) {
      const responseCode = (error as { responseCode?: number }).responseCode;
      // 5xx is the server's final word (no such mailbox, refused); anything else may pass.
      const permanent = responseCode !== undefined && responseCode >= 500;
      const delay = retryDelays[attempt];
      if (permanent || delay === undefined || closing) {
        counts.failed += 1;
        options.log('error', { template: mail.template, response_code: responseCode, reason: (error as Error).message, attempts: attempt + 1 }, 'mail: message not delivered');
        settle(mail.template);
        return;
      }
      options.log('warn', { template: mail.template, response_code: responseCode, reason: (error as Error).message, retry_in_ms: delay }, 'mail: delivery failed, retrying');
      const timer = setTimeout(() => {
        retryTimers.delete(timer);
        void deliver(mail, attempt + 1);
      }, delay);
      timer.unref();
      retryTimers.set(timer, mail.template);
    }
  }

  return {
    mode: transport ? 'smtp' : 'log',
    send(mail) {
      if (!reserve(mail.template)) return false;
      void deliver(mail, 0);
      return true;
    },
    afterAnswer(task, kind) {
      // Counted with the messages of its kind: a flood's lookups and its messages share one bound.
      const deferredKind = kind;
      if (!reserve(deferredKind)) return;
      // setImmediate: after the handler's reply has been written.
      setImmediate(() => {
        task()
          .catch((error: unknown) => options.log('error', { reason: (error as Error).message }, 'mail: deferred task failed'))
          .finally(() => settle(deferredKind));
      });
    },
    idle() {
      return pending === 0 ? Promise.resolve() : new Promise((resolve) => idleWaiters.push(resolve));
    },
    stats: () => ({ queued: pending, ...counts }),
    async close() {
      closing = true;
      // Messages waiting for a retry are given up (logged); deferred tasks and messages being sent finish first.
      for (const [timer, kind] of retryTimers) {
        clearTimeout(timer);
        counts.failed += 1;
        options.log('error', {}, 'mail: closing, a message waiting for a retry was not delivered');
        settle(kind);
      }
      retryTimers.clear();
      await Promise.race([this.idle(), new Promise((resolve) => setTimeout(resolve, 15_000).unref())]);
      closed = true;
      transport?.close();
    },
  };
}
