# Offline plan tests: `terraform test` (after `terraform init -backend=false -plugin-dir=...`).
# The provider runs with fake credentials and skips every account lookup; the two data sources that
# would call AWS are overridden, so nothing here needs a network or an AWS account.

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
  values = {
    account_id = "123456789012"
    arn        = "arn:aws:iam::123456789012:user/test"
  }
}

override_data {
  target = data.aws_availability_zones.available
  values = {
    names = ["us-east-1a", "us-east-1b", "us-east-1c"]
  }
}

variables {
  image_tag           = "0123abc"
  aggregator_zip_path = "tests/fixtures/aggregator-placeholder.zip"
  # Runs that test other things plan without a certificate; rejects_missing_certificate turns it off.
  allow_plain_http = true
}

run "http_defaults" {
  command = plan

  assert {
    condition     = length(aws_lb_listener.https) == 0 && aws_lb_listener.http.default_action[0].type == "forward"
    error_message = "Without a certificate the HTTP listener must forward to the api."
  }

  assert {
    condition     = aws_lb_target_group.api.health_check[0].path == "/readyz"
    error_message = "The target group must check /readyz."
  }

  assert {
    condition = (
      local.api_env.HOST == "0.0.0.0" && local.api_env.PORT == "3000" && local.api_env.TRUST_PROXY == "1" &&
      local.api_env.STATUS_TABLE == "docorch-dev-status" && local.api_env.STREAM_NAME == "docorch-dev-events" &&
      local.api_env.UPLOADS_BUCKET == "docorch-dev-uploads-123456789012-us-east-1"
    )
    error_message = "The api container environment does not carry the expected names."
  }

  assert {
    condition     = local.worker_env.WORKER_PORT == "8081" && local.worker_env.LEASES_TABLE == "docorch-dev-leases" && local.worker_env.ANALYSIS_CONCURRENCY == "8"
    error_message = "The worker container environment does not carry the expected names."
  }

  assert {
    condition     = !contains(keys(local.aggregator_env), "AWS_REGION")
    error_message = "AWS_REGION is reserved in Lambda and must not be set."
  }

  assert {
    condition     = length(aws_nat_gateway.main) == 2 && length(aws_subnet.private) == 2 && length(aws_vpc_endpoint.kinesis) == 0
    error_message = "Expected two zones with one NAT gateway each and no Kinesis endpoint by default."
  }

  assert {
    condition     = aws_dynamodb_table.status.stream_view_type == "NEW_AND_OLD_IMAGES" && one(aws_dynamodb_table.files.ttl).attribute_name == "expiresAt"
    error_message = "Status table stream or files table TTL misconfigured."
  }

  assert {
    condition = (
      aws_lambda_event_source_mapping.aggregator.bisect_batch_on_function_error &&
      aws_lambda_event_source_mapping.aggregator.function_response_types == toset(["ReportBatchItemFailures"])
    )
    error_message = "The aggregator event source mapping must bisect and report item failures."
  }

  assert {
    condition     = !contains([for s in data.aws_iam_policy_document.task_execution.statement : s.sid], "ReadGeminiKey")
    error_message = "Without a Gemini secret the execution role must not read secrets."
  }

  assert {
    condition = alltrue([
      for s in data.aws_iam_policy_document.api_task.statement : !anytrue([for a in s.actions : endswith(a, "*")])
    ])
    error_message = "The api role must name its actions; no wildcards."
  }
}

# HTTPS by default: no certificate and no explicit allow_plain_http is refused.
run "rejects_missing_certificate" {
  command = plan

  variables {
    allow_plain_http = false
  }

  expect_failures = [var.certificate_arn]
}

# A handler the deployed zip does not export (the old default) fails the plan, not the first document.
run "rejects_unexported_handler" {
  command = plan

  variables {
    certificate_arn    = "arn:aws:acm:us-east-1:123456789012:certificate/11111111-2222-3333-4444-555555555555"
    aggregator_handler = "dist/handler.handler"
  }

  expect_failures = [aws_lambda_function.aggregator]
}

run "https_spot_and_gemini_secret" {
  command = plan

  variables {
    certificate_arn           = "arn:aws:acm:us-east-1:123456789012:certificate/11111111-2222-3333-4444-555555555555"
    gemini_api_key_secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:docorch/gemini-AbCdEf:apiKey::"
    worker_use_fargate_spot   = true
    single_nat_gateway        = true
    availability_zone_count   = 3
  }

  assert {
    condition     = length(aws_lb_listener.https) == 1 && aws_lb_listener.http.default_action[0].type == "redirect"
    error_message = "With a certificate, HTTPS must forward and HTTP must redirect."
  }

  assert {
    condition     = tonumber(local.api_env.KEEP_ALIVE_TIMEOUT_MS) > aws_lb.api.idle_timeout * 1000
    error_message = "The API's keep-alive timeout must be longer than the ALB's idle timeout."
  }

  assert {
    condition = (
      local.aggregator_env.GEMINI_API_KEY_SECRET_ARN == var.gemini_api_key_secret_arn &&
      contains([for s in data.aws_iam_policy_document.aggregator.statement : s.sid], "ReadGeminiKey")
    )
    error_message = "With Gemini the aggregator must get the key (the summary is made by the same model as the chunks)."
  }

  assert {
    condition     = aws_lambda_function.aggregator.handler == "lambda.handler" && aws_lambda_function.aggregator.runtime == "nodejs22.x"
    error_message = "The aggregator runs the bundle's lambda.handler on nodejs22.x."
  }

  assert {
    condition = one([
      for s in data.aws_iam_policy_document.task_execution.statement : s.resources if s.sid == "ReadGeminiKey"
    ]) == toset(["arn:aws:secretsmanager:us-east-1:123456789012:secret:docorch/gemini-AbCdEf"])
    error_message = "The execution role must read the secret itself (without the JSON-key suffix)."
  }

  assert {
    condition     = local.gemini_secret[0].name == "GEMINI_API_KEY" && local.gemini_secret[0].valueFrom == var.gemini_api_key_secret_arn
    error_message = "GEMINI_API_KEY must be injected from Secrets Manager."
  }

  assert {
    condition     = length(aws_ecs_service.worker.capacity_provider_strategy) == 2
    error_message = "Workers must use FARGATE plus FARGATE_SPOT."
  }

  assert {
    condition     = length(aws_nat_gateway.main) == 1 && length(aws_subnet.private) == 3
    error_message = "Expected three zones sharing one NAT gateway."
  }
}

run "rejects_more_workers_than_shards" {
  command = plan

  variables {
    shard_count      = 2
    worker_max_count = 3
  }

  expect_failures = [var.worker_max_count]
}

run "rejects_latest_tag" {
  command = plan

  variables {
    image_tag = "latest"
  }

  expect_failures = [var.image_tag]
}
