# The IAM policies, checked offline: each service is granted only the actions its code uses, on
# this environment's own resources, and no data action is granted with a wildcard (in the action or
# as a "*" resource). The resources the policies name are overridden with known ARNs so the policy
# statements are fully known at plan time.
#
# The allowed actions below are the SDK calls each service makes (packages/core/src/aws/,
# stream/, ratelimit/, pipeline/), reviewed with the code: a new call needs a line here and in
# iam.tf. test/infra.test.ts shows that a wildcard added to iam.tf makes this file fail.

provider "aws" {
  region                      = "us-east-1"
  access_key                  = "test"
  secret_key                  = "test"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
}

override_data {
  target = data.aws_caller_identity.current
  values = { account_id = "123456789012", arn = "arn:aws:iam::123456789012:user/test" }
}

override_data {
  target = data.aws_availability_zones.available
  values = { names = ["us-east-1a", "us-east-1b", "us-east-1c"] }
}

override_resource {
  target          = aws_dynamodb_table.status
  override_during = plan
  values = {
    arn        = "arn:aws:dynamodb:us-east-1:123456789012:table/docorch-dev-status"
    stream_arn = "arn:aws:dynamodb:us-east-1:123456789012:table/docorch-dev-status/stream/2026-01-01T00:00:00.000"
  }
}
override_resource {
  target          = aws_dynamodb_table.files
  override_during = plan
  values          = { arn = "arn:aws:dynamodb:us-east-1:123456789012:table/docorch-dev-files" }
}
override_resource {
  target          = aws_dynamodb_table.tenants
  override_during = plan
  values          = { arn = "arn:aws:dynamodb:us-east-1:123456789012:table/docorch-dev-tenants" }
}
override_resource {
  target          = aws_dynamodb_table.leases
  override_during = plan
  values          = { arn = "arn:aws:dynamodb:us-east-1:123456789012:table/docorch-dev-leases" }
}
override_resource {
  target          = aws_dynamodb_table.dead_letters
  override_during = plan
  values          = { arn = "arn:aws:dynamodb:us-east-1:123456789012:table/docorch-dev-dead-letters" }
}
override_resource {
  target          = aws_dynamodb_table.webhooks
  override_during = plan
  values          = { arn = "arn:aws:dynamodb:us-east-1:123456789012:table/docorch-dev-webhooks" }
}
override_resource {
  target          = aws_dynamodb_table.rate_limit
  override_during = plan
  values          = { arn = "arn:aws:dynamodb:us-east-1:123456789012:table/docorch-dev-ratelimit" }
}
override_resource {
  target          = aws_s3_bucket.uploads
  override_during = plan
  values          = { arn = "arn:aws:s3:::docorch-dev-uploads-123456789012-us-east-1" }
}
override_resource {
  target          = aws_s3_bucket.results
  override_during = plan
  values          = { arn = "arn:aws:s3:::docorch-dev-results-123456789012-us-east-1" }
}
override_resource {
  target          = aws_kinesis_stream.events
  override_during = plan
  values          = { arn = "arn:aws:kinesis:us-east-1:123456789012:stream/docorch-dev-events" }
}
override_resource {
  target          = aws_kms_key.data
  override_during = plan
  values          = { arn = "arn:aws:kms:us-east-1:123456789012:key/docorch-dev-data" }
}
override_resource {
  target          = aws_sqs_queue.aggregator_failures
  override_during = plan
  values          = { arn = "arn:aws:sqs:us-east-1:123456789012:docorch-dev-aggregator-failures" }
}
override_resource {
  target          = aws_cloudwatch_log_group.aggregator
  override_during = plan
  values          = { arn = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/docorch-dev-aggregator" }
}
override_resource {
  target          = aws_cloudwatch_log_group.metrics
  override_during = plan
  values          = { arn = "arn:aws:logs:us-east-1:123456789012:log-group:/ecs/docorch-dev/metrics" }
}
override_resource {
  target          = aws_cloudwatch_log_group.service
  override_during = plan
  values          = { arn = "arn:aws:logs:us-east-1:123456789012:log-group:/ecs/docorch-dev/service" }
}
override_resource {
  target          = aws_ecr_repository.service
  override_during = plan
  values          = { arn = "arn:aws:ecr:us-east-1:123456789012:repository/docorch-dev/service" }
}

variables {
  image_tag                 = "0123abc"
  aggregator_zip_path       = "tests/fixtures/aggregator-placeholder.zip"
  certificate_arn           = "arn:aws:acm:us-east-1:123456789012:certificate/11111111-2222-3333-4444-555555555555"
  gemini_api_key_secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:docorch-dev/gemini-AbCdEf"
}

run "least_privilege" {
  command = plan

  # --- only the actions each service's code uses ---------------------------------------------------

  assert {
    condition = length(setsubtract(flatten(data.aws_iam_policy_document.api_task.statement[*].actions), [
      "s3:ListBucket", "s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts",
      "dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
      "dynamodb:Query", "dynamodb:BatchWriteItem", "dynamodb:ConditionCheckItem",
      "kinesis:PutRecord", "kinesis:PutRecords", "kinesis:DescribeStreamSummary",
      "kms:Decrypt", "kms:GenerateDataKey",
      "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams",
    ])) == 0
    error_message = "The api role grants actions the api does not use: ${join(", ", setsubtract(flatten(data.aws_iam_policy_document.api_task.statement[*].actions), ["s3:ListBucket", "s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts", "dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Query", "dynamodb:BatchWriteItem", "dynamodb:ConditionCheckItem", "kinesis:PutRecord", "kinesis:PutRecords", "kinesis:DescribeStreamSummary", "kms:Decrypt", "kms:GenerateDataKey", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]))}"
  }

  assert {
    condition = length(setsubtract(flatten(data.aws_iam_policy_document.worker_task.statement[*].actions), [
      "s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:DeleteObject",
      "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Query", "dynamodb:Scan",
      "dynamodb:BatchWriteItem", "dynamodb:ConditionCheckItem", "dynamodb:DescribeTable",
      "kinesis:DescribeStream", "kinesis:DescribeStreamSummary", "kinesis:ListShards", "kinesis:GetShardIterator",
      "kinesis:GetRecords", "kinesis:PutRecord", "kinesis:PutRecords",
      "kms:Decrypt", "kms:GenerateDataKey",
      "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams",
    ])) == 0
    error_message = "The worker role grants actions the worker does not use."
  }

  assert {
    condition = length(setsubtract(flatten(data.aws_iam_policy_document.aggregator.statement[*].actions), [
      "logs:CreateLogStream", "logs:PutLogEvents",
      "dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams",
      "dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:Query", "dynamodb:PutItem",
      "s3:ListBucket", "s3:GetObject", "s3:PutObject",
      "sqs:SendMessage", "kms:Decrypt", "kms:GenerateDataKey", "secretsmanager:GetSecretValue",
    ])) == 0
    error_message = "The aggregator role grants actions the aggregator does not use."
  }

  # --- no wildcard on a data action --------------------------------------------------------------------

  assert {
    condition = alltrue([
      for s in concat(
        data.aws_iam_policy_document.api_task.statement,
        data.aws_iam_policy_document.worker_task.statement,
        data.aws_iam_policy_document.aggregator.statement,
      ) : alltrue([for a in s.actions : !strcontains(a, "*")]) && alltrue([for r in s.resources : r != "*"])
    ])
    error_message = "A service role grants a wildcard action or a \"*\" resource."
  }

  # The execution role's one "*" is ecr:GetAuthorizationToken, which has no resource-level form.
  assert {
    condition = alltrue([
      for s in data.aws_iam_policy_document.task_execution.statement :
      alltrue([for a in s.actions : !strcontains(a, "*")]) && (s.sid == "EcrAuth" || alltrue([for r in s.resources : r != "*"]))
    ])
    error_message = "The task execution role grants a wildcard beyond ecr:GetAuthorizationToken."
  }

  # --- on this environment's own resources ------------------------------------------------------------

  assert {
    condition = alltrue([
      for s in concat(
        data.aws_iam_policy_document.api_task.statement,
        data.aws_iam_policy_document.worker_task.statement,
        data.aws_iam_policy_document.aggregator.statement,
      ) : alltrue([for r in s.resources : strcontains(r, "docorch-dev")])
    ])
    error_message = "A service role names a resource outside this environment."
  }

  # Writes to object storage stay under tenants/ (every key a tenant reaches starts there).
  assert {
    condition = alltrue([
      for s in concat(
        data.aws_iam_policy_document.api_task.statement,
        data.aws_iam_policy_document.worker_task.statement,
        data.aws_iam_policy_document.aggregator.statement,
      ) : alltrue([for r in s.resources : endswith(r, "/tenants/*")]) if anytrue([for a in s.actions : contains(["s3:PutObject", "s3:GetObject", "s3:DeleteObject"], a)])
    ])
    error_message = "Object actions must be limited to keys under tenants/."
  }
}
