/**
 * The webhook events: one per terminal status of a document (docs/webhooks.md).
 */
import type { JobStatus } from '../jobs/model.js';

export const WEBHOOK_EVENTS = ['document.completed', 'document.completed_with_errors', 'document.failed', 'document.cancelled'] as const;
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];

/** The event a terminal status sends, or undefined for a status that is not terminal. */
export function webhookEventOf(status: JobStatus): WebhookEvent | undefined {
  switch (status) {
    case 'completed':
      return 'document.completed';
    case 'completed_with_errors':
      return 'document.completed_with_errors';
    case 'failed':
      return 'document.failed';
    case 'cancelled':
      return 'document.cancelled';
    default:
      return undefined;
  }
}
