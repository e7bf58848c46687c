# Application metrics in CloudWatch (namespace var.metrics_namespace, written by the collector
# sidecars and the aggregator's EMF lines): a dashboard, alarms on them, and the optional WAF.
# Every alarm here has a runbook entry in docs/PRODUCTION.md under its name.

locals {
  ns = var.metrics_namespace
}

resource "aws_cloudwatch_dashboard" "main" {
  dashboard_name = local.prefix
  dashboard_body = jsonencode({
    widgets = [
      { type = "metric", x = 0, y = 0, width = 12, height = 6, properties = {
        title = "Documents by status", region = var.region, stat = "Sum", period = 300, view = "timeSeries",
        # Terminal transitions are counted by whichever process makes them (sync: api, split
        # failures: worker, assemblies: aggregator), so the status series are summed over services.
        metrics = concat(
          [["${local.ns}", "documents_total", "service", "api", "mode", "sync"], ["...", "async"]],
          [for s in ["completed", "completed_with_errors", "failed", "cancelled"] : [{
            expression = "SUM(SEARCH('{${local.ns},service,status} MetricName=\"documents_finished_total\" status=\"${s}\"', 'Sum', 300))"
            label      = s
            id         = replace(s, "_", "")
          }]],
        )
      } },
      { type = "metric", x = 12, y = 0, width = 12, height = 6, properties = {
        title = "Chunk latency p50 / p95 (s)", region = var.region, period = 300, view = "timeSeries",
        metrics = [
          ["${local.ns}", "analysis_seconds", "service", "worker", { stat = "p50", label = "p50" }],
          ["${local.ns}", "analysis_seconds", "service", "worker", { stat = "p95", label = "p95" }],
        ]
      } },
      { type = "metric", x = 0, y = 6, width = 12, height = 6, properties = {
        title = "Model calls by outcome", region = var.region, stat = "Sum", period = 300, view = "timeSeries",
        metrics = [for o in ["ok", "THROTTLED", "UPSTREAM_UNAVAILABLE", "TIMEOUT", "INVALID_MODEL_OUTPUT", "SAFETY_BLOCKED"] :
        ["${local.ns}", "model_calls_total", "service", "worker", "operation", "analyzeChunk", "outcome", o]]
      } },
      { type = "metric", x = 12, y = 6, width = 6, height = 6, properties = {
        title   = "429 answers by code", region = var.region, stat = "Sum", period = 300, view = "timeSeries",
        metrics = [["${local.ns}", "throttled_total", "service", "api", "code", "THROTTLED"]]
      } },
      { type = "metric", x = 18, y = 6, width = 6, height = 6, properties = {
        title   = "Circuit state (0 closed, 1 half-open, 2 open)", region = var.region, stat = "Maximum", period = 60, view = "timeSeries",
        metrics = [["${local.ns}", "circuit_state", "service", "worker"]]
      } },
      { type = "metric", x = 0, y = 12, width = 8, height = 6, properties = {
        title = "Dead letters", region = var.region, stat = "Sum", period = 300, view = "timeSeries",
        metrics = [
          [{ expression = "SEARCH('{${local.ns},service,source,code} MetricName=\"dead_letters_total\"', 'Sum', 300)", id = "dl", label = "" }],
          ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", aws_sqs_queue.aggregator_failures.name, { stat = "Maximum" }],
        ]
      } },
      { type = "metric", x = 8, y = 12, width = 8, height = 6, properties = {
        title = "Iterator age (ms)", region = var.region, stat = "Maximum", period = 60, view = "timeSeries",
        metrics = [
          ["AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds", "StreamName", aws_kinesis_stream.events.name],
          ["AWS/Lambda", "IteratorAge", "FunctionName", aws_lambda_function.aggregator.function_name],
        ]
      } },
      { type = "metric", x = 16, y = 12, width = 8, height = 6, properties = {
        title   = "Records behind (read, not done)", region = var.region, stat = "Maximum", period = 60, view = "timeSeries",
        metrics = [["${local.ns}", "records_behind", "service", "worker", "stream", aws_kinesis_stream.events.name]]
      } },
    ]
  })
}

# --- alarms on the application metrics ---------------------------------------------------------------

resource "aws_cloudwatch_metric_alarm" "dead_letters" {
  alarm_name          = "${local.prefix}-dead-letters"
  alarm_description   = "Records were dead-lettered (stream or aggregator): see docs/PRODUCTION.md, runbook 'dead-letters'."
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarm_dead_letters
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "total"
    expression  = "SUM(SEARCH('{${local.ns},service,source,code} MetricName=\"dead_letters_total\"', 'Sum', 300))"
    label       = "dead letters"
    return_data = true
  }
}

resource "aws_cloudwatch_metric_alarm" "circuit_open" {
  alarm_name          = "${local.prefix}-model-circuit-open"
  alarm_description   = "The model circuit breaker is open (the model keeps failing): runbook 'model-circuit-open'."
  namespace           = local.ns
  metric_name         = "circuit_state"
  dimensions          = { service = "worker" }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 3
  threshold           = 2
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "model_errors" {
  alarm_name          = "${local.prefix}-model-errors"
  alarm_description   = "More than ${var.alarm_model_error_ratio * 100}% of model calls failed over 10 minutes: runbook 'model-errors'."
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarm_model_error_ratio
  evaluation_periods  = 2
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "all"
    expression  = "SUM(SEARCH('{${local.ns},service,operation,outcome} MetricName=\"model_calls_total\"', 'Sum', 300))"
    return_data = false
  }
  metric_query {
    id          = "ok"
    expression  = "SUM(SEARCH('{${local.ns},service,operation,outcome} MetricName=\"model_calls_total\" outcome=\"ok\"', 'Sum', 300))"
    return_data = false
  }
  metric_query {
    id          = "ratio"
    expression  = "IF(all > 0, (all - ok) / all, 0)"
    label       = "failed share of model calls"
    return_data = true
  }
}

resource "aws_cloudwatch_metric_alarm" "chunk_latency" {
  alarm_name          = "${local.prefix}-chunk-latency-p95"
  alarm_description   = "p95 chunk analysis latency above ${var.alarm_chunk_p95_seconds} s for 15 minutes: runbook 'chunk-latency-p95'."
  namespace           = local.ns
  metric_name         = "analysis_seconds"
  dimensions          = { service = "worker" }
  extended_statistic  = "p95"
  period              = 300
  evaluation_periods  = 3
  threshold           = var.alarm_chunk_p95_seconds
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "documents_failed" {
  alarm_name          = "${local.prefix}-documents-failed"
  alarm_description   = "Documents ended failed (more than 5 in 15 minutes, sync, split or assembly): runbook 'documents-failed'."
  comparison_operator = "GreaterThanThreshold"
  threshold           = 5
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "failed"
    expression  = "SUM(SEARCH('{${local.ns},service,status} MetricName=\"documents_finished_total\" status=\"failed\"', 'Sum', 900))"
    label       = "failed documents"
    return_data = true
  }
}

# --- optional WAF in front of the ALB -----------------------------------------------------------------

resource "aws_wafv2_web_acl" "api" {
  count = var.enable_waf ? 1 : 0

  name  = "${local.prefix}-api"
  scope = "REGIONAL"

  default_action {
    allow {}
  }

  # Per client IP, before any API key is looked at: a flood from one address costs nothing behind it.
  rule {
    name     = "rate-per-ip"
    priority = 1

    action {
      block {}
    }

    statement {
      rate_based_statement {
        limit              = var.waf_requests_per_5_minutes
        aggregate_key_type = "IP"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${local.prefix}-rate-per-ip"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "aws-common"
    priority = 2

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesCommonRuleSet"

        # Uploads are large multipart bodies: the body-size rule would block every real document.
        rule_action_override {
          name = "SizeRestrictions_BODY"
          action_to_use {
            count {}
          }
        }
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${local.prefix}-aws-common"
      sampled_requests_enabled   = true
    }
  }

  visibility_config {
    cloudwatch_metrics_enabled = true
    metric_name                = "${local.prefix}-api"
    sampled_requests_enabled   = true
  }
}

resource "aws_wafv2_web_acl_association" "api" {
  count = var.enable_waf ? 1 : 0

  resource_arn = aws_lb.api.arn
  web_acl_arn  = aws_wafv2_web_acl.api[0].arn
}
