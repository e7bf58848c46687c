# Names shared by several files, the account context, and the environment every container gets.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  prefix     = "${var.name}-${var.environment}"
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  # Resource names as packages/core/src/config.ts reads them; every process gets all of them, so
  # no service ever falls back to a config default that names a resource outside this environment.
  resource_env = {
    UPLOADS_BUCKET     = aws_s3_bucket.uploads.bucket
    RESULTS_BUCKET     = aws_s3_bucket.results.bucket
    FILES_TABLE        = aws_dynamodb_table.files.name
    STATUS_TABLE       = aws_dynamodb_table.status.name
    TENANTS_TABLE      = aws_dynamodb_table.tenants.name
    LEASES_TABLE       = aws_dynamodb_table.leases.name
    STREAM_NAME        = aws_kinesis_stream.events.name
    DEAD_LETTERS_TABLE = aws_dynamodb_table.dead_letters.name
    RATE_LIMIT_TABLE   = aws_dynamodb_table.rate_limit.name
    WEBHOOKS_TABLE     = aws_dynamodb_table.webhooks.name
  }

  # Tunables with deployment-specific defaults; the *_environment variables override these.
  api_threads    = max(1, floor(var.api_cpu / 1024))
  worker_threads = max(1, floor(var.worker_cpu / 1024))

  api_env = merge(
    {
      LOG_LEVEL        = var.log_level
      GEMINI_MODEL     = var.gemini_model
      PDF_THREADS      = tostring(local.api_threads)
      ANALYSIS_THREADS = tostring(local.api_threads)
    },
    var.api_environment,
    local.resource_env,
    {
      NODE_ENV   = "production"
      AWS_REGION = var.region
      HOST       = "0.0.0.0"
      PORT       = tostring(local.api_port)
      # One proxy (the ALB) in front of the API, so req.ip is the client's address.
      TRUST_PROXY = "1"
      # Longer than the ALB's idle timeout: the ALB closes idle connections first (no 502s).
      KEEP_ALIVE_TIMEOUT_MS = tostring((var.alb_idle_timeout_seconds + 15) * 1000)
    },
  )

  worker_env = merge(
    {
      LOG_LEVEL            = var.log_level
      GEMINI_MODEL         = var.gemini_model
      ANALYSIS_CONCURRENCY = tostring(var.worker_analysis_concurrency)
      PDF_THREADS          = tostring(local.worker_threads)
      ANALYSIS_THREADS     = tostring(local.worker_threads)
    },
    var.worker_environment,
    local.resource_env,
    {
      NODE_ENV   = "production"
      AWS_REGION = var.region
      HOST       = "0.0.0.0"
      # The worker's small HTTP server for /healthz and /metrics.
      WORKER_PORT = tostring(local.worker_port)
    },
  )

  aggregator_env = merge(
    {
      LOG_LEVEL        = var.log_level
      ANALYSIS_THREADS = "1"
      PDF_THREADS      = "1"
      NODE_OPTIONS     = "--enable-source-maps"
    },
    var.aggregator_environment,
    local.resource_env,
    # AWS_REGION is set by the Lambda runtime itself (a reserved name).
    {
      NODE_ENV          = "production"
      METRICS_NAMESPACE = var.metrics_namespace
      GEMINI_MODEL      = var.gemini_model
    },
    # With Gemini, the document summary is made by the same model as the chunks: the function reads
    # the key from Secrets Manager at start (Lambda has no `secrets` like an ECS container).
    var.gemini_api_key_secret_arn == null ? {} : { GEMINI_API_KEY_SECRET_ARN = var.gemini_api_key_secret_arn },
  )

  api_port    = 3000
  worker_port = 8081

  # Alarm and OK actions: the SNS topic when one is given.
  alarm_actions = var.alarm_sns_topic_arn == null ? [] : [var.alarm_sns_topic_arn]
}
