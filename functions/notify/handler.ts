// Notify: the primary's registry notifications through a Lambda function URL (POST /events, /events/harbor, /events/quay/<token>, /events/github); event jobs to the sync queue.
import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';
import { createNotifyRuntime, functionUrlRequest } from '../../shared/aws/notify-runtime.js';
import { answerWebhook } from '../../shared/jobs/index.js';

const runtime = createNotifyRuntime(process.env);

export const handler = async (event: APIGatewayProxyEventV2, context: Context) =>
  runtime.invoke(context, () => answerWebhook(functionUrlRequest(event), runtime.door));
