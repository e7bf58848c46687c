# The aggregator: a Lambda on the status table's DynamoDB stream that assembles a document's result
# once all its chunks are counted. Built from services/aggregator (README.md: "Lambda zip").

locals {
  aggregator_name = "${local.prefix}-aggregator"
  aggregator_zip  = startswith(var.aggregator_zip_path, "/") ? var.aggregator_zip_path : "${path.module}/${var.aggregator_zip_path}"
  # `pnpm build:lambda` writes, next to the zip, the handlers its entry module really exports
  # (read by importing the bundle), so a handler name that the zip does not export fails the plan.
  aggregator_manifest = jsondecode(file("${local.aggregator_zip}.json"))
}

resource "aws_cloudwatch_log_group" "aggregator" {
  name              = "/aws/lambda/${local.aggregator_name}"
  retention_in_days = var.log_retention_days
}

# Records the event source mapping gave up on (after bisecting and retries) are described here:
# shard, sequence-number range and the error, so they can be replayed from the stream.
resource "aws_sqs_queue" "aggregator_failures" {
  name                      = "${local.aggregator_name}-failures"
  message_retention_seconds = 1209600 # 14 days, the maximum
  sqs_managed_sse_enabled   = true
}

resource "aws_lambda_function" "aggregator" {
  function_name    = local.aggregator_name
  description      = "docorch: assembles document results from the status table stream"
  role             = aws_iam_role.aggregator.arn
  runtime          = "nodejs22.x"
  handler          = var.aggregator_handler
  filename         = local.aggregator_zip
  source_code_hash = filebase64sha256(local.aggregator_zip)
  architectures    = [lower(var.cpu_architecture)] # x86_64 or arm64
  memory_size      = var.aggregator_memory_mb
  timeout          = var.aggregator_timeout_seconds

  reserved_concurrent_executions = var.aggregator_reserved_concurrency

  environment {
    variables = local.aggregator_env
  }

  logging_config {
    log_format = "Text" # pino already writes one JSON object per line
    log_group  = aws_cloudwatch_log_group.aggregator.name
  }

  lifecycle {
    precondition {
      condition     = contains(local.aggregator_manifest.handlers, var.aggregator_handler)
      error_message = "aggregator_handler \"${var.aggregator_handler}\" is not exported by ${var.aggregator_zip_path}; it exports: ${join(", ", local.aggregator_manifest.handlers)}."
    }
    precondition {
      condition     = local.aggregator_manifest.runtime == "nodejs22.x"
      error_message = "The aggregator bundle was built for ${local.aggregator_manifest.runtime}, but the function runs nodejs22.x."
    }
  }

  depends_on = [aws_iam_role_policy.aggregator]
}

resource "aws_lambda_event_source_mapping" "aggregator" {
  event_source_arn = aws_dynamodb_table.status.stream_arn
  function_name    = aws_lambda_function.aggregator.arn
  # The handler is idempotent (conditional claim of the assembly), so re-reading the retained
  # 24 hours after the mapping is recreated is harmless, whereas LATEST could miss a finished job.
  starting_position = "TRIM_HORIZON"

  batch_size                         = var.aggregator_batch_size
  maximum_batching_window_in_seconds = 1
  parallelization_factor             = var.aggregator_parallelization_factor

  # A failing batch is split in halves to isolate a poison record; the handler also reports
  # single records it could not handle, so the rest of the batch is not retried.
  bisect_batch_on_function_error = true
  maximum_retry_attempts         = var.aggregator_maximum_retry_attempts
  maximum_record_age_in_seconds  = var.aggregator_maximum_record_age_seconds
  function_response_types        = ["ReportBatchItemFailures"]

  destination_config {
    on_failure {
      destination_arn = aws_sqs_queue.aggregator_failures.arn
    }
  }

  # Only JOB rows decide whether a document is ready to assemble; chunk-row changes (the bulk of
  # the stream) never invoke the function.
  filter_criteria {
    filter {
      pattern = jsonencode({ dynamodb = { Keys = { sk = { S = ["JOB"] } } } })
    }
  }
}
