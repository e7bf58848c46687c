/**
 * A document's webhook deliveries: GET /v1/documents/{id}/deliveries (the log, every attempt) and
 * POST /v1/documents/{id}/deliveries/{deliveryId}/redeliver (due now, with a fresh retry window).
 */
import type { Request, Response, Router } from 'express';
import { deliveryView, type PipelineContext } from '@docorch/core';
import { problem } from '../problem.js';
import { loadJob } from './documents.js';

const DELIVERY_ID = /^dlv_[A-Za-z0-9_-]{10,40}$/;

/** Adds the delivery routes to the documents router. */
export function addDeliveryRoutes(router: Router, ctx: PipelineContext): void {
  router.get('/:id/deliveries', async (req: Request, res: Response) => {
    const job = await loadJob(ctx, req);
    const deliveries = await ctx.webhooks.list(job.tenantId, job.documentId);
    res.json({ deliveries: deliveries.map(deliveryView) });
  });

  router.post('/:id/deliveries/:deliveryId/redeliver', async (req: Request, res: Response) => {
    const job = await loadJob(ctx, req);
    const deliveryId = String(req.params.deliveryId ?? '');
    const key = { tenantId: job.tenantId, documentId: job.documentId, deliveryId };
    if (!DELIVERY_ID.test(deliveryId) || !(await ctx.webhooks.get(key))) throw problem('NOT_FOUND', `Delivery ${deliveryId} not found`);
    const delivery = await ctx.webhooks.redeliver(key, new Date());
    if (!delivery) throw problem('NOT_FOUND', `Delivery ${deliveryId} not found`);
    req.log.info({ tenantId: job.tenantId, documentId: job.documentId, deliveryId }, 'webhook redelivery requested');
    res.status(202).json(deliveryView(delivery));
  });
}
