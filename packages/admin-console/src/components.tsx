import type { ComponentChildren } from 'preact';
import { useEffect, useId, useRef } from 'preact/hooks';
import { formatTime } from './format.ts';
import { followLink } from './router.ts';
import { BASE } from './router.ts';

export function Link(props: { to: string; children: ComponentChildren; current?: boolean; class?: string; label?: string }) {
  return (
    <a
      href={`${BASE}${props.to}`}
      class={props.class}
      aria-current={props.current ? 'page' : undefined}
      aria-label={props.label}
      onClick={(event) => followLink(event, props.to)}
    >
      {props.children}
    </a>
  );
}

/**
 * A page's heading takes the focus when the page opens, so a keyboard or screen-reader user lands at
 * its start after following a link (a reload of the document would do the same), not on a stale element.
 */
export function PageHeading(props: { children: ComponentChildren; focus?: boolean }) {
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    if (props.focus !== false) heading.current?.focus();
  }, []);
  return (
    <h1 ref={heading} tabIndex={-1}>
      {props.children}
    </h1>
  );
}

/** Failures: an alert, read out at once. Empty, it renders nothing. */
export function ErrorNotice(props: { message: string }) {
  return props.message ? (
    <p role="alert" class="notice notice-error">
      {props.message}
    </p>
  ) : null;
}

export function Time(props: { value: string | null | undefined }) {
  return props.value ? <time dateTime={props.value}>{formatTime(props.value)}</time> : <span>—</span>;
}

/**
 * A modal question before an action that cannot be undone. The native <dialog> keeps the focus
 * inside while open, closes on Escape and gives the focus back to the button that opened it.
 */
export function ConfirmDialog(props: {
  open: boolean;
  title: string;
  children: ComponentChildren;
  confirmLabel: string;
  danger?: boolean;
  onConfirm: () => void;
  onCancel: () => void;
}) {
  const dialog = useRef<HTMLDialogElement>(null);
  // A page may hold several dialogs: each names itself by ids of its own.
  const id = useId();
  // The latest props, for the observer below (set at every render, read when the dialog closes).
  const latest = useRef(props);
  latest.current = props;
  useEffect(() => {
    const element = dialog.current;
    if (!element) return;
    if (props.open && !element.open) element.showModal();
    if (!props.open && element.open) element.close();
  }, [props.open]);
  // The browser closed the dialog (Escape) while the state still says open: the state follows at once.
  // The 'close' event is a later task and 'cancel' is skipped when Chromium sees no recent user
  // activation, so a handler on either could run after a quick Enter on the opener had set the state
  // to open again, and cancel that (seen as a flaky browser test under load). A mutation observer's
  // callback runs before the task that closed the dialog ends, so it sees the state of that moment.
  useEffect(() => {
    const element = dialog.current;
    if (!element) return;
    const observer = new MutationObserver(() => {
      if (!element.open && latest.current.open) latest.current.onCancel();
    });
    observer.observe(element, { attributes: true, attributeFilter: ['open'] });
    return () => observer.disconnect();
  }, []);
  return (
    <dialog ref={dialog} aria-labelledby={`${id}-title`} aria-describedby={`${id}-body`}>
      <h2 id={`${id}-title`}>{props.title}</h2>
      <div id={`${id}-body`}>{props.children}</div>
      <div class="actions">
        {/* Cancel first and focused: Enter on an opened dialog must not destroy anything. */}
        <button type="button" autoFocus onClick={props.onCancel}>
          Cancel
        </button>
        <button type="button" class={props.danger ? 'danger' : 'primary'} onClick={props.onConfirm}>
          {props.confirmLabel}
        </button>
      </div>
    </dialog>
  );
}
