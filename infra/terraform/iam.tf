# Least-privilege roles. Each service gets the actions its code performs on the exact tables,
# buckets (objects under tenants/ only), stream and queue it uses, and nothing else:
#   api        - uploads and results objects, files/status/tenants tables, puts stream records
#   worker     - reads uploads, writes chunk inputs and results, status/files/leases/dead-letters
#                tables, consumes and produces stream records
#   aggregator - status table and its stream, results objects, its on-failure queue
# s3:ListBucket is granted on the buckets a service reads so that a missing object is a 404
# (NoSuchKey), not a 403, and HeadBucket (readiness) works.

locals {
  object_prefix = "tenants/*" # every key is tenants/{tenantId}/documents/{documentId}/...

  # KMS use of the data key, only through the services that store data with it.
  kms_via_services = [
    "s3.${var.region}.amazonaws.com",
    "dynamodb.${var.region}.amazonaws.com",
    "kinesis.${var.region}.amazonaws.com",
  ]
}

# --- trust policies --------------------------------------------------------------------------------

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    # Confused-deputy guard: only ECS acting for this account may assume the roles.
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:ecs:${var.region}:${local.account_id}:*"]
    }
  }
}

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

# --- task execution role: pull images, write logs, read the Gemini secret ---------------------------

resource "aws_iam_role" "task_execution" {
  name               = "${local.prefix}-task-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "task_execution" {
  statement {
    sid       = "EcrAuth"
    actions   = ["ecr:GetAuthorizationToken"] # account-wide by design; no resource-level form
    resources = ["*"]
  }

  statement {
    sid = "PullImages"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:GetDownloadUrlForLayer",
    ]
    resources = [for repo in aws_ecr_repository.service : repo.arn]
  }

  statement {
    sid       = "WriteLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [for group in aws_cloudwatch_log_group.service : "${group.arn}:*"]
  }

  dynamic "statement" {
    for_each = var.gemini_api_key_secret_arn == null ? [] : [1]
    content {
      sid     = "ReadGeminiKey"
      actions = ["secretsmanager:GetSecretValue"]
      # A `:json-key::` suffix selects a key inside the secret; the IAM resource is the secret itself.
      resources = [join(":", slice(split(":", var.gemini_api_key_secret_arn), 0, 7))]
    }
  }

  dynamic "statement" {
    for_each = var.gemini_api_key_secret_arn != null && var.gemini_kms_key_arn != null ? [1] : []
    content {
      sid       = "DecryptGeminiKey"
      actions   = ["kms:Decrypt"]
      resources = [var.gemini_kms_key_arn]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${var.region}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role_policy" "task_execution" {
  name   = "pull-log-secrets"
  role   = aws_iam_role.task_execution.id
  policy = data.aws_iam_policy_document.task_execution.json
}

# --- api task role -------------------------------------------------------------------------------------

resource "aws_iam_role" "api_task" {
  name               = "${local.prefix}-api-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "api_task" {
  statement {
    sid       = "ListBuckets"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.uploads.arn, aws_s3_bucket.results.arn]
  }

  # Uploads (streamed multipart), sync-path chunk inputs, DELETE of a document's data.
  statement {
    sid = "UploadsObjects"
    actions = [
      "s3:PutObject",
      "s3:GetObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = ["${aws_s3_bucket.uploads.arn}/${local.object_prefix}"]
  }

  # Sync results are written by the API; GET .../result reads them; DELETE removes them.
  statement {
    sid       = "ResultsObjects"
    actions   = ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"]
    resources = ["${aws_s3_bucket.results.arn}/${local.object_prefix}"]
  }

  statement {
    sid = "FilesTable"
    actions = [
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
      "dynamodb:DeleteItem",
      "dynamodb:ConditionCheckItem",
    ]
    resources = [aws_dynamodb_table.files.arn]
  }

  statement {
    sid = "StatusTable"
    actions = [
      "dynamodb:DescribeTable", # readiness
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
      "dynamodb:DeleteItem",
      "dynamodb:Query",
      "dynamodb:BatchWriteItem", # cancelling pending chunk rows
      "dynamodb:ConditionCheckItem",
    ]
    resources = [aws_dynamodb_table.status.arn]
  }

  statement {
    sid       = "StatusByTenantIndex"
    actions   = ["dynamodb:Query"]
    resources = ["${aws_dynamodb_table.status.arn}/index/byTenant"]
  }

  # Authentication only reads; tenants are provisioned out of band.
  # DELETE of a document deletes its dead letters.
  statement {
    sid       = "DeadLettersOfDocument"
    actions   = ["dynamodb:Query", "dynamodb:BatchWriteItem"]
    resources = [aws_dynamodb_table.dead_letters.arn]
  }

  # A document's webhook delivery log (GET .../deliveries) and redelivery (POST .../redeliver).
  statement {
    sid       = "WebhookDeliveries"
    actions   = ["dynamodb:Query", "dynamodb:GetItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.webhooks.arn]
  }

  statement {
    sid       = "TenantsTable"
    actions   = ["dynamodb:DescribeTable", "dynamodb:GetItem"]
    resources = [aws_dynamodb_table.tenants.arn]
  }

  # Fleet-wide model rate limit (GCRA bucket rows, conditional writes).
  statement {
    sid       = "RateLimitTable"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.rate_limit.arn]
  }

  # The sync path adds the tenant's monthly usage.
  statement {
    sid       = "TenantUsage"
    actions   = ["dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.tenants.arn]
  }

  statement {
    sid       = "ProduceEvents"
    actions   = ["kinesis:PutRecord", "kinesis:PutRecords", "kinesis:DescribeStreamSummary"]
    resources = [aws_kinesis_stream.events.arn]
  }

  statement {
    sid       = "DataKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.data.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = local.kms_via_services
    }
  }

  # The metrics sidecar (ADOT collector) writes EMF lines to the metrics log group.
  statement {
    sid       = "WriteMetrics"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = [aws_cloudwatch_log_group.metrics.arn, "${aws_cloudwatch_log_group.metrics.arn}:*"]
  }
}

resource "aws_iam_role_policy" "api_task" {
  name   = "docorch-api"
  role   = aws_iam_role.api_task.id
  policy = data.aws_iam_policy_document.api_task.json
}

# --- worker task role ----------------------------------------------------------------------------------

resource "aws_iam_role" "worker_task" {
  name               = "${local.prefix}-worker-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "worker_task" {
  statement {
    sid       = "ListBuckets"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.uploads.arn, aws_s3_bucket.results.arn]
  }

  # Reads the source PDF, writes and reads chunk inputs; the reconciler's purge of a deleted document.
  statement {
    sid       = "UploadsObjects"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:DeleteObject"]
    resources = ["${aws_s3_bucket.uploads.arn}/${local.object_prefix}"]
  }

  # Chunk results; a result whose count was refused is deleted again, as is a purged document's.
  statement {
    sid       = "ResultsObjects"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${aws_s3_bucket.results.arn}/${local.object_prefix}"]
  }

  # Chunk rows and chunksTotal in one transaction, conditional claims, idempotent counting.
  statement {
    sid = "StatusTable"
    actions = [
      "dynamodb:DescribeTable",
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
      "dynamodb:Query",
      "dynamodb:BatchWriteItem",
      "dynamodb:ConditionCheckItem",
      "dynamodb:DeleteItem", # the reconciler's purge of a cancelled tombstone
    ]
    resources = [aws_dynamodb_table.status.arn]
  }

  # The reconciler finds stale documents in the sparse open-status index.
  statement {
    sid       = "StatusOpenIndex"
    actions   = ["dynamodb:Query"]
    resources = ["${aws_dynamodb_table.status.arn}/index/byOpenStatus"]
  }

  statement {
    sid       = "FilesTable"
    actions   = ["dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"]
    resources = [aws_dynamodb_table.files.arn]
  }

  # Lease table (KCL layout): list, create, renew, take, checkpoint, and remove finished shards.
  statement {
    sid = "LeasesTable"
    actions = [
      "dynamodb:DescribeTable",
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
      "dynamodb:DeleteItem",
      "dynamodb:Scan",
      "dynamodb:Query",
    ]
    resources = [aws_dynamodb_table.leases.arn]
  }

  # Store, hold and finish dead letters; delete them with a purged document.
  statement {
    sid       = "DeadLettersTable"
    actions   = ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:GetItem", "dynamodb:Query", "dynamodb:BatchWriteItem"]
    resources = [aws_dynamodb_table.dead_letters.arn]
  }

  # Fleet-wide model rate limit (GCRA bucket rows, conditional writes).
  # The webhook dispatcher: finds due deliveries on the byDue index, claims and records attempts.
  statement {
    sid       = "WebhookDeliveries"
    actions   = ["dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.webhooks.arn]
  }

  statement {
    sid       = "WebhooksDueIndex"
    actions   = ["dynamodb:Query"]
    resources = ["${aws_dynamodb_table.webhooks.arn}/index/byDue"]
  }

  statement {
    sid       = "RateLimitTable"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.rate_limit.arn]
  }

  # Monthly usage rows (USAGE#tenant#month) in the tenants table, added with each chunk; the
  # tenant row's plan weight (fair share) and webhook signing secret are read.
  statement {
    sid       = "TenantUsage"
    actions   = ["dynamodb:UpdateItem", "dynamodb:GetItem"]
    resources = [aws_dynamodb_table.tenants.arn]
  }

  statement {
    sid = "ConsumeAndProduceEvents"
    actions = [
      "kinesis:DescribeStream",
      "kinesis:DescribeStreamSummary",
      "kinesis:ListShards",
      "kinesis:GetShardIterator",
      "kinesis:GetRecords",
      "kinesis:PutRecord",
      "kinesis:PutRecords",
    ]
    resources = [aws_kinesis_stream.events.arn]
  }

  statement {
    sid       = "DataKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.data.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = local.kms_via_services
    }
  }

  # The metrics sidecar (ADOT collector) writes EMF lines to the metrics log group.
  statement {
    sid       = "WriteMetrics"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = [aws_cloudwatch_log_group.metrics.arn, "${aws_cloudwatch_log_group.metrics.arn}:*"]
  }
}

resource "aws_iam_role_policy" "worker_task" {
  name   = "docorch-worker"
  role   = aws_iam_role.worker_task.id
  policy = data.aws_iam_policy_document.worker_task.json
}

# --- aggregator Lambda role -------------------------------------------------------------------------------

resource "aws_iam_role" "aggregator" {
  name               = "${local.prefix}-aggregator"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
}

data "aws_iam_policy_document" "aggregator" {
  statement {
    sid       = "WriteLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.aggregator.arn}:*"]
  }

  # What the event source mapping needs to read the status table's stream.
  statement {
    sid = "ReadStatusStream"
    actions = [
      "dynamodb:DescribeStream",
      "dynamodb:GetRecords",
      "dynamodb:GetShardIterator",
      "dynamodb:ListStreams",
    ]
    resources = ["${aws_dynamodb_table.status.arn}/stream/*"]
  }

  # Claims the assembly and finishes the job with conditional updates; reads the chunk rows.
  statement {
    sid       = "StatusTable"
    actions   = ["dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:Query"]
    resources = [aws_dynamodb_table.status.arn]
  }

  # Fleet-wide model rate limit (GCRA bucket rows, conditional writes).
  # A terminal transition schedules the document's webhooks: the tenant's URL, then one row per target.
  statement {
    sid       = "TenantWebhook"
    actions   = ["dynamodb:GetItem"]
    resources = [aws_dynamodb_table.tenants.arn]
  }

  statement {
    sid       = "ScheduleWebhooks"
    actions   = ["dynamodb:PutItem"]
    resources = [aws_dynamodb_table.webhooks.arn]
  }

  statement {
    sid       = "RateLimitTable"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.rate_limit.arn]
  }

  # Monthly usage rows (USAGE#tenant#month) in the tenants table, added with each chunk.
  statement {
    sid       = "TenantUsage"
    actions   = ["dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.tenants.arn]
  }

  statement {
    sid       = "ListResults"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.results.arn]
  }

  # Reads the chunk results, writes the document result.
  statement {
    sid       = "ResultsObjects"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["${aws_s3_bucket.results.arn}/${local.object_prefix}"]
  }

  # The on-failure destination is written with the function's role.
  statement {
    sid       = "OnFailureQueue"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.aggregator_failures.arn]
  }

  statement {
    sid       = "DataKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.data.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = local.kms_via_services
    }
  }

  # With Gemini the function reads the key at start (GEMINI_API_KEY_SECRET_ARN): the document
  # summary is made by the same model as the chunks.
  dynamic "statement" {
    for_each = var.gemini_api_key_secret_arn == null ? [] : [1]
    content {
      sid       = "ReadGeminiKey"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [join(":", slice(split(":", var.gemini_api_key_secret_arn), 0, 7))]
    }
  }

  dynamic "statement" {
    for_each = var.gemini_api_key_secret_arn != null && var.gemini_kms_key_arn != null ? [1] : []
    content {
      sid       = "DecryptGeminiKey"
      actions   = ["kms:Decrypt"]
      resources = [var.gemini_kms_key_arn]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${var.region}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role_policy" "aggregator" {
  name   = "docorch-aggregator"
  role   = aws_iam_role.aggregator.id
  policy = data.aws_iam_policy_document.aggregator.json
}
