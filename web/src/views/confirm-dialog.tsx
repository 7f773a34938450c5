/**
 * An inline confirmation for an action that cannot be undone. It takes the focus on its safe
 * choice (so Enter right after opening it does nothing harmful), Escape picks that choice, and the
 * focus goes back to where it was when the dialog closes.
 */
import { type ReactNode, type RefObject, useEffect, useId, useRef } from "react";

/** What the dialog asks and what its two buttons say. */
export interface ConfirmDialogProps {
  /** The accessible name of the dialog, e.g. "Confirm cancel". */
  readonly label: string;
  /** The question, e.g. "Cancel 3 selected tasks?". */
  readonly children: ReactNode;
  readonly confirmLabel: string;
  readonly keepLabel: string;
  readonly onConfirm: () => void;
  readonly onKeep: () => void;
  /** Where the focus goes back to (default: what had it when the dialog opened). */
  readonly returnTo?: RefObject<HTMLElement | null>;
}

/** The confirmation, shown where it is rendered. */
export function ConfirmDialog(p: ConfirmDialogProps) {
  const keep = useRef<HTMLButtonElement>(null);
  const descId = useId();
  const returnTo = p.returnTo;
  useEffect(() => {
    const before = document.activeElement;
    keep.current?.focus();
    return () => {
      // Only when the focus is lost with the dialog: a confirmed action may have moved it on.
      const lost = document.activeElement === null || document.activeElement === document.body;
      const target = returnTo?.current ?? before;
      if (lost && target instanceof HTMLElement && target.isConnected) target.focus();
    };
  }, [returnTo]);
  return (
    <div
      role="alertdialog"
      aria-label={p.label}
      aria-describedby={descId}
      className="confirm"
      onKeyDown={(e) => {
        if (e.key === "Escape") {
          e.preventDefault();
          p.onKeep();
        }
      }}
    >
      <span id={descId}>{p.children}</span>
      <button type="button" className="danger" onClick={p.onConfirm}>
        {p.confirmLabel}
      </button>
      <button type="button" ref={keep} onClick={p.onKeep}>
        {p.keepLabel}
      </button>
    </div>
  );
}
