// Notify: the primary's registry notifications through a Lambda function URL (POST /events, /events/harbor, /events/quay/<token>, /events/github),
// and an ECR primary's EventBridge `ECR Image Action` events, invoked by the stack's rule; event jobs to the sync queue.
import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';
import { createNotifyRuntime, functionUrlRequest } from '../../shared/aws/notify-runtime.js';
import { answerWebhook, isEcrImageAction } from '../../shared/jobs/index.js';

const runtime = createNotifyRuntime(process.env);

export const handler = async (event: APIGatewayProxyEventV2, context: Context) =>
  isEcrImageAction(event)
    ? runtime.invoke(context, () => runtime.takeEcrEvent(event))
    : runtime.invoke(context, () => answerWebhook(functionUrlRequest(event), runtime.door));
