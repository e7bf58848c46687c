# Inputs of the docorch deployment. Every variable has a description and, where a safe value
# exists, a default; `image_tag` is the only required one (there is no safe default image).

# --- naming and placement ---------------------------------------------------------------------

variable "region" {
  description = "AWS region everything is deployed to."
  type        = string
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must look like an AWS region code, e.g. us-east-1."
  }
}

variable "name" {
  description = "Name prefix of every resource (combined with environment, e.g. docorch-prod-status)."
  type        = string
  default     = "docorch"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,15}$", var.name))
    error_message = "name must be 2-16 characters: lower-case letters, digits and hyphens, starting with a letter."
  }
}

variable "environment" {
  description = "Environment name (dev, staging, prod, ...); part of every resource name and tagged as Environment."
  type        = string
  default     = "dev"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,11}$", var.environment))
    error_message = "environment must be 2-12 lower-case letters or digits, starting with a letter."
  }
}

variable "tags" {
  description = "Extra tags put on every resource through the provider's default_tags."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.tags) : length(k) <= 128]) && alltrue([for v in values(var.tags) : length(v) <= 256])
    error_message = "Tag keys must be at most 128 characters and values at most 256."
  }
}

# --- network ------------------------------------------------------------------------------------

variable "vpc_cidr" {
  description = "CIDR block of the VPC. Public subnets are /24-sized slices of its first /20, private subnets the following /20 slices (for a /16)."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) >= 16 && tonumber(split("/", var.vpc_cidr)[1]) <= 18
    error_message = "vpc_cidr must be a valid IPv4 CIDR with a prefix length from /16 to /18 (smaller VPCs leave the ALB subnets too small)."
  }
}

variable "availability_zone_count" {
  description = "Availability zones to spread subnets, NAT gateways and tasks over."
  type        = number
  default     = 2

  validation {
    condition     = var.availability_zone_count >= 2 && var.availability_zone_count <= 3
    error_message = "availability_zone_count must be 2 or 3 (an ALB needs at least two zones)."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway shared by all zones (cheaper, but egress fails with that zone) instead of one per zone."
  type        = bool
  default     = false
}

variable "enable_kinesis_vpc_endpoint" {
  description = "Interface VPC endpoint for Kinesis Data Streams, so stream traffic skips the NAT gateways. Costs per zone-hour; records are small pointers, so it is off by default."
  type        = bool
  default     = false
}

variable "allowed_ingress_cidrs" {
  description = "IPv4 CIDR blocks allowed to reach the load balancer."
  type        = list(string)
  default     = ["0.0.0.0/0"]

  validation {
    condition     = length(var.allowed_ingress_cidrs) > 0 && alltrue([for c in var.allowed_ingress_cidrs : can(cidrhost(c, 0))])
    error_message = "allowed_ingress_cidrs must be a non-empty list of valid IPv4 CIDR blocks."
  }
}

# --- load balancer --------------------------------------------------------------------------------

variable "certificate_arn" {
  description = "ACM certificate ARN of the HTTPS listener (port 80 then redirects to 443). Required: API keys and documents must not cross the internet in cleartext. Only `allow_plain_http = true` lets it be null."
  type        = string
  default     = null

  validation {
    condition     = var.certificate_arn == null || can(regex("^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/.+$", var.certificate_arn))
    error_message = "certificate_arn must be null or an ACM certificate ARN."
  }

  validation {
    condition     = var.certificate_arn != null || var.allow_plain_http
    error_message = "certificate_arn is required: without it API keys and documents travel in cleartext. Set an ACM certificate ARN, or allow_plain_http = true explicitly (a private test environment only)."
  }
}

variable "allow_plain_http" {
  description = "Serve the API on plain HTTP (port 80) when no certificate_arn is given. Off by default; for throw-away test environments only."
  type        = bool
  default     = false
}

variable "ssl_policy" {
  description = "TLS policy of the HTTPS listener (only used with certificate_arn)."
  type        = string
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"

  validation {
    condition     = startswith(var.ssl_policy, "ELBSecurityPolicy-")
    error_message = "ssl_policy must be an ELB security policy name (ELBSecurityPolicy-...)."
  }
}

variable "alb_idle_timeout_seconds" {
  description = "ALB idle timeout. Longer than the longest quiet period of a request (a sync analysis, SYNC_TIMEOUT_MS 25 s, or a ?wait=30 long-poll), and shorter than the API's keep-alive timeout, which is set to this plus 15 s (KEEP_ALIVE_TIMEOUT_MS) so the ALB, not the API, closes an idle connection and never sends a request on a socket the API is closing (a 502)."
  type        = number
  default     = 60

  validation {
    condition     = var.alb_idle_timeout_seconds >= 35 && var.alb_idle_timeout_seconds <= 4000
    error_message = "alb_idle_timeout_seconds must be between 35 (above the 25 s sync budget and 30 s long-polls) and 4000."
  }
}

# --- data protection ------------------------------------------------------------------------------

variable "deletion_protection" {
  description = "Deletion protection on the DynamoDB tables and the load balancer. Turn off only to destroy an environment."
  type        = bool
  default     = true
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete non-empty S3 buckets and ECR repositories. For throw-away environments only."
  type        = bool
  default     = false
}

variable "uploads_expiration_days" {
  description = "Days after which objects in the uploads bucket (source PDFs, chunk inputs) are deleted."
  type        = number
  default     = 30

  validation {
    condition     = var.uploads_expiration_days >= 1
    error_message = "uploads_expiration_days must be at least 1."
  }
}

variable "results_noncurrent_version_days" {
  description = "Days a replaced or deleted result object version is kept in the (versioned) results bucket before it expires."
  type        = number
  default     = 30

  validation {
    condition     = var.results_noncurrent_version_days >= 1
    error_message = "results_noncurrent_version_days must be at least 1."
  }
}

variable "log_retention_days" {
  description = "Retention of the CloudWatch log groups (api, worker, aggregator)."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention period CloudWatch Logs supports (1, 3, 5, 7, 14, 30, 60, 90, ...)."
  }
}

# --- stream -----------------------------------------------------------------------------------------

variable "shard_count" {
  description = "Shards of the Kinesis stream (provisioned mode). Each shard is leased by one worker at a time, so this caps useful worker tasks."
  type        = number
  default     = 4

  validation {
    condition     = var.shard_count >= 1 && var.shard_count <= 500
    error_message = "shard_count must be between 1 and 500."
  }
}

variable "stream_retention_hours" {
  description = "How long the Kinesis stream keeps records (24 to 8760 hours). Longer than the longest consumer outage you want to survive."
  type        = number
  default     = 24

  validation {
    condition     = var.stream_retention_hours >= 24 && var.stream_retention_hours <= 8760
    error_message = "stream_retention_hours must be between 24 and 8760."
  }
}

# --- images and containers ---------------------------------------------------------------------------

variable "image_tag" {
  description = "Tag of the api and worker images in the ECR repositories this configuration creates (e.g. the git commit). Required: tags are immutable, so every release gets a new one."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag)) && var.image_tag != "latest"
    error_message = "image_tag must be a valid Docker tag other than \"latest\" (the repositories have immutable tags)."
  }
}

variable "ecr_keep_images" {
  description = "Images kept per ECR repository; older ones are expired."
  type        = number
  default     = 30

  validation {
    condition     = var.ecr_keep_images >= 1
    error_message = "ecr_keep_images must be at least 1."
  }
}

variable "cpu_architecture" {
  description = "CPU architecture of the Fargate tasks and the Lambda function; the images and the Lambda zip must be built for it."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "log_level" {
  description = "LOG_LEVEL of every service (pino level)."
  type        = string
  default     = "info"

  validation {
    condition     = contains(["fatal", "error", "warn", "info", "debug", "trace", "silent"], var.log_level)
    error_message = "log_level must be one of fatal, error, warn, info, debug, trace, silent."
  }
}

variable "gemini_api_key_secret_arn" {
  description = "Secrets Manager secret whose value is the Gemini API key (plain string; append `:KEY::` for a JSON key). Injected as GEMINI_API_KEY into api and worker. Null runs the local offline analyzer."
  type        = string
  default     = null

  validation {
    condition     = var.gemini_api_key_secret_arn == null || can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$", var.gemini_api_key_secret_arn))
    error_message = "gemini_api_key_secret_arn must be null or a Secrets Manager secret ARN."
  }
}

variable "gemini_kms_key_arn" {
  description = "Customer-managed KMS key the Gemini secret is encrypted with, if any (the task execution role then gets kms:Decrypt on it). Null for the default aws/secretsmanager key."
  type        = string
  default     = null

  validation {
    condition     = var.gemini_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:", var.gemini_kms_key_arn))
    error_message = "gemini_kms_key_arn must be null or a KMS key ARN."
  }
}

variable "gemini_model" {
  description = "GEMINI_MODEL of api and worker."
  type        = string
  default     = "gemini-2.5-flash"

  validation {
    condition     = length(trimspace(var.gemini_model)) > 0
    error_message = "gemini_model must not be empty."
  }
}

variable "api_environment" {
  description = "Extra environment of the api container (any knob of packages/core/src/config.ts, e.g. MAX_UPLOAD_BYTES). Resource names, HOST, PORT and TRUST_PROXY are set by this configuration and cannot be overridden."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.api_environment) : can(regex("^[A-Z][A-Z0-9_]*$", k))])
    error_message = "api_environment keys must be upper-case environment variable names."
  }
}

variable "worker_environment" {
  description = "Extra environment of the worker container (any knob of packages/core/src/config.ts). Resource names, HOST and WORKER_PORT cannot be overridden."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.worker_environment) : can(regex("^[A-Z][A-Z0-9_]*$", k))])
    error_message = "worker_environment keys must be upper-case environment variable names."
  }
}

variable "aggregator_environment" {
  description = "Extra environment of the aggregator Lambda (AWS_* names are reserved by Lambda). Resource names cannot be overridden."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.aggregator_environment) : can(regex("^[A-Z][A-Z0-9_]*$", k)) && !startswith(k, "AWS_")])
    error_message = "aggregator_environment keys must be upper-case environment variable names not starting with AWS_."
  }
}

# --- api service ---------------------------------------------------------------------------------------

variable "api_cpu" {
  description = "CPU units of one api task (1024 = 1 vCPU). PDF_THREADS and ANALYSIS_THREADS default to one per vCPU."
  type        = number
  default     = 1024

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.api_cpu)
    error_message = "api_cpu must be a Fargate CPU size: 256, 512, 1024, 2048, 4096, 8192 or 16384."
  }
}

variable "api_memory" {
  description = "Memory of one api task in MiB (must be a valid Fargate combination with api_cpu). Each PDF thread may use PDF_MAX_HEAP_MB (768) of it."
  type        = number
  default     = 3072

  validation {
    condition     = var.api_memory >= 512 && var.api_memory <= 122880 && var.api_memory % 512 == 0
    error_message = "api_memory must be a multiple of 512 MiB between 512 and 122880."
  }
}

variable "api_min_count" {
  description = "Fewest api tasks (autoscaling floor); at least 2 keeps the API up through a zone failure or a deployment."
  type        = number
  default     = 2

  validation {
    condition     = var.api_min_count >= 1
    error_message = "api_min_count must be at least 1."
  }
}

variable "api_max_count" {
  description = "Most api tasks (autoscaling ceiling)."
  type        = number
  default     = 10

  validation {
    condition     = var.api_max_count >= var.api_min_count
    error_message = "api_max_count must be at least api_min_count."
  }
}

variable "api_cpu_target_percent" {
  description = "Average CPU utilisation the api service is scaled to hold."
  type        = number
  default     = 60

  validation {
    condition     = var.api_cpu_target_percent >= 10 && var.api_cpu_target_percent <= 90
    error_message = "api_cpu_target_percent must be between 10 and 90."
  }
}

variable "api_requests_per_target" {
  description = "ALB requests per minute per api task the service is scaled to hold (sync requests are heavy, so this is low)."
  type        = number
  default     = 300

  validation {
    condition     = var.api_requests_per_target >= 1
    error_message = "api_requests_per_target must be at least 1."
  }
}

# --- worker service ------------------------------------------------------------------------------------

variable "worker_cpu" {
  description = "CPU units of one worker task (1024 = 1 vCPU)."
  type        = number
  default     = 2048

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.worker_cpu)
    error_message = "worker_cpu must be a Fargate CPU size: 256, 512, 1024, 2048, 4096, 8192 or 16384."
  }
}

variable "worker_memory" {
  description = "Memory of one worker task in MiB (must be a valid Fargate combination with worker_cpu)."
  type        = number
  default     = 4096

  validation {
    condition     = var.worker_memory >= 512 && var.worker_memory <= 122880 && var.worker_memory % 512 == 0
    error_message = "worker_memory must be a multiple of 512 MiB between 512 and 122880."
  }
}

variable "worker_analysis_concurrency" {
  description = "ANALYSIS_CONCURRENCY of a worker: chunk analyses in flight per task (the p-limit cap)."
  type        = number
  default     = 8

  validation {
    condition     = var.worker_analysis_concurrency >= 1
    error_message = "worker_analysis_concurrency must be at least 1."
  }
}

variable "worker_min_count" {
  description = "Fewest worker tasks (autoscaling floor)."
  type        = number
  default     = 2

  validation {
    condition     = var.worker_min_count >= 1
    error_message = "worker_min_count must be at least 1."
  }
}

variable "worker_max_count" {
  description = "Most worker tasks (autoscaling ceiling). A shard is leased by one worker, so more workers than shards would sit idle."
  type        = number
  default     = 4

  validation {
    condition     = var.worker_max_count >= var.worker_min_count && var.worker_max_count <= var.shard_count
    error_message = "worker_max_count must be at least worker_min_count and at most shard_count."
  }
}

variable "worker_use_fargate_spot" {
  description = "Run workers above the first one on Fargate Spot. Safe because a stopped worker's leases expire and another worker resumes from the last checkpoint."
  type        = bool
  default     = false
}

variable "worker_scale_out_iterator_age_ms" {
  description = "Stream lag (GetRecords.IteratorAgeMilliseconds, maximum over shards) at which workers are added."
  type        = number
  default     = 30000

  validation {
    condition     = var.worker_scale_out_iterator_age_ms >= 1000
    error_message = "worker_scale_out_iterator_age_ms must be at least 1000."
  }
}

variable "worker_scale_in_iterator_age_ms" {
  description = "Stream lag below which, held for 15 minutes, a worker is removed."
  type        = number
  default     = 5000

  validation {
    condition     = var.worker_scale_in_iterator_age_ms >= 0 && var.worker_scale_in_iterator_age_ms < var.worker_scale_out_iterator_age_ms
    error_message = "worker_scale_in_iterator_age_ms must be non-negative and below worker_scale_out_iterator_age_ms."
  }
}

# --- aggregator Lambda ----------------------------------------------------------------------------------

variable "aggregator_zip_path" {
  description = "Path of the aggregator deployment zip built from services/aggregator (see README.md); relative paths are relative to this folder."
  type        = string
  default     = "build/aggregator.zip"

  validation {
    condition     = endswith(var.aggregator_zip_path, ".zip")
    error_message = "aggregator_zip_path must point to a .zip file."
  }
}

variable "aggregator_handler" {
  description = "Handler of the aggregator Lambda, relative to the zip root: <file without extension>.<export>. The plan fails unless the zip's manifest (aggregator.zip.json, written by `pnpm build:lambda`) lists it as exported."
  type        = string
  default     = "lambda.handler"

  validation {
    condition     = can(regex("^[A-Za-z0-9_./-]+\\.[A-Za-z_$][A-Za-z0-9_$]*$", var.aggregator_handler))
    error_message = "aggregator_handler must look like path/to/file.exportName."
  }
}

variable "aggregator_memory_mb" {
  description = "Memory of the aggregator Lambda in MB (CPU grows with it: 1769 MB is one vCPU)."
  type        = number
  default     = 1769

  validation {
    condition     = var.aggregator_memory_mb >= 128 && var.aggregator_memory_mb <= 10240
    error_message = "aggregator_memory_mb must be between 128 and 10240."
  }
}

variable "aggregator_timeout_seconds" {
  description = "Timeout of one aggregator invocation (one batch of stream records, assembling the documents that finished)."
  type        = number
  default     = 300

  validation {
    condition     = var.aggregator_timeout_seconds >= 10 && var.aggregator_timeout_seconds <= 900
    error_message = "aggregator_timeout_seconds must be between 10 and 900."
  }
}

variable "aggregator_reserved_concurrency" {
  description = "Reserved concurrency of the aggregator Lambda; -1 leaves it unreserved."
  type        = number
  default     = -1

  validation {
    condition     = var.aggregator_reserved_concurrency >= -1
    error_message = "aggregator_reserved_concurrency must be -1 or more."
  }
}

variable "aggregator_batch_size" {
  description = "Most status-table stream records per aggregator invocation."
  type        = number
  default     = 100

  validation {
    condition     = var.aggregator_batch_size >= 1 && var.aggregator_batch_size <= 10000
    error_message = "aggregator_batch_size must be between 1 and 10000."
  }
}

variable "aggregator_parallelization_factor" {
  description = "Concurrent batches per stream shard (1-10). Records of one item (one job row) stay in order."
  type        = number
  default     = 2

  validation {
    condition     = var.aggregator_parallelization_factor >= 1 && var.aggregator_parallelization_factor <= 10
    error_message = "aggregator_parallelization_factor must be between 1 and 10."
  }
}

variable "aggregator_maximum_retry_attempts" {
  description = "Retries of a failing batch (after bisecting) before its records go to the on-failure queue."
  type        = number
  default     = 5

  validation {
    condition     = var.aggregator_maximum_retry_attempts >= 0 && var.aggregator_maximum_retry_attempts <= 10000
    error_message = "aggregator_maximum_retry_attempts must be between 0 and 10000."
  }
}

variable "aggregator_maximum_record_age_seconds" {
  description = "Records older than this are sent to the on-failure queue instead of being retried (60 to 604800; -1 for no limit)."
  type        = number
  default     = 3600

  validation {
    condition     = var.aggregator_maximum_record_age_seconds == -1 || (var.aggregator_maximum_record_age_seconds >= 60 && var.aggregator_maximum_record_age_seconds <= 604800)
    error_message = "aggregator_maximum_record_age_seconds must be -1 or between 60 and 604800."
  }
}

# --- alarms -------------------------------------------------------------------------------------------------

variable "alarm_sns_topic_arn" {
  description = "SNS topic notified when an alarm fires or recovers. Null creates the alarms without actions."
  type        = string
  default     = null

  validation {
    condition     = var.alarm_sns_topic_arn == null || can(regex("^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:.+$", var.alarm_sns_topic_arn))
    error_message = "alarm_sns_topic_arn must be null or an SNS topic ARN."
  }
}

variable "alarm_iterator_age_ms" {
  description = "Stream lag (Kinesis iterator age for the workers, DynamoDB stream iterator age for the aggregator) that raises an alarm."
  type        = number
  default     = 600000

  validation {
    condition     = var.alarm_iterator_age_ms >= 1000
    error_message = "alarm_iterator_age_ms must be at least 1000."
  }
}

variable "alarm_5xx_per_5_minutes" {
  description = "5xx responses (from the api targets or the ALB itself) in 5 minutes that raise an alarm."
  type        = number
  default     = 10

  validation {
    condition     = var.alarm_5xx_per_5_minutes >= 1
    error_message = "alarm_5xx_per_5_minutes must be at least 1."
  }
}

variable "container_insights" {
  description = "CloudWatch Container Insights on the ECS cluster (per-task CPU, memory, network metrics; billed as custom metrics)."
  type        = bool
  default     = true
}

# --- observability --------------------------------------------------------------------------------

variable "metrics_namespace" {
  description = "CloudWatch namespace of the application metrics (the collector sidecars and the aggregator's Embedded Metric Format lines)."
  type        = string
  default     = "docorch"
}

variable "metrics_collector_image" {
  description = "Image of the metrics sidecar in each task: the AWS Distro for OpenTelemetry collector, which scrapes the service's /metrics and writes them to CloudWatch (awsemf). Pin by digest in production."
  type        = string
  default     = "public.ecr.aws/aws-observability/aws-otel-collector:v0.43.3"
}

variable "alarm_dead_letters" {
  description = "Dead-lettered records (stream or aggregator) in 5 minutes that raise an alarm."
  type        = number
  default     = 0
}

variable "alarm_model_error_ratio" {
  description = "Share of model calls failing (any error class) over 10 minutes that raises an alarm (0-1)."
  type        = number
  default     = 0.2

  validation {
    condition     = var.alarm_model_error_ratio > 0 && var.alarm_model_error_ratio <= 1
    error_message = "alarm_model_error_ratio must be in (0, 1]."
  }
}

variable "alarm_chunk_p95_seconds" {
  description = "p95 chunk analysis latency (seconds, over 15 minutes) that raises an alarm."
  type        = number
  default     = 60
}

# --- web application firewall --------------------------------------------------------------------

variable "enable_waf" {
  description = "Put an AWS WAF web ACL with a per-client-IP rate rule (and AWS managed common rules) in front of the ALB."
  type        = bool
  default     = false
}

variable "waf_requests_per_5_minutes" {
  description = "WAF rate rule: requests one client IP may send in any 5-minute window before it is blocked (403) for a while."
  type        = number
  default     = 3000

  validation {
    condition     = var.waf_requests_per_5_minutes >= 100
    error_message = "waf_requests_per_5_minutes must be at least 100 (the WAF minimum is 10; lower values block normal polling)."
  }
}
