# What clients, CI and operators need after `terraform apply`.

output "api_url" {
  description = "Base URL of the API (the ALB's DNS name; point a DNS record matching the certificate at it for HTTPS)."
  value       = "${local.https ? "https" : "http"}://${aws_lb.api.dns_name}"
}

output "alb_dns_name" {
  description = "DNS name of the load balancer."
  value       = aws_lb.api.dns_name
}

output "alb_zone_id" {
  description = "Route 53 hosted zone id of the load balancer, for an alias record."
  value       = aws_lb.api.zone_id
}

output "ecr_repository_urls" {
  description = "Where to push the api and worker images (tag them with image_tag)."
  value       = { for k, repo in aws_ecr_repository.service : k => repo.repository_url }
}

output "uploads_bucket" {
  description = "UPLOADS_BUCKET: uploaded PDFs and chunk inputs."
  value       = aws_s3_bucket.uploads.bucket
}

output "results_bucket" {
  description = "RESULTS_BUCKET: chunk and document results."
  value       = aws_s3_bucket.results.bucket
}

output "table_names" {
  description = "DynamoDB table names by config variable."
  value = {
    FILES_TABLE        = aws_dynamodb_table.files.name
    STATUS_TABLE       = aws_dynamodb_table.status.name
    TENANTS_TABLE      = aws_dynamodb_table.tenants.name
    LEASES_TABLE       = aws_dynamodb_table.leases.name
    DEAD_LETTERS_TABLE = aws_dynamodb_table.dead_letters.name
    WEBHOOKS_TABLE     = aws_dynamodb_table.webhooks.name
  }
}

output "stream_name" {
  description = "STREAM_NAME: the Kinesis event stream."
  value       = aws_kinesis_stream.events.name
}

output "stream_arn" {
  description = "ARN of the Kinesis event stream."
  value       = aws_kinesis_stream.events.arn
}

output "ecs_cluster_name" {
  description = "ECS cluster running the api and worker services."
  value       = aws_ecs_cluster.main.name
}

output "aggregator_function_name" {
  description = "Name of the aggregator Lambda."
  value       = aws_lambda_function.aggregator.function_name
}

output "aggregator_failures_queue_url" {
  description = "SQS queue receiving status-stream batches the aggregator gave up on."
  value       = aws_sqs_queue.aggregator_failures.url
}

output "data_kms_key_arn" {
  description = "KMS key encrypting the buckets, tables and stream."
  value       = aws_kms_key.data.arn
}

output "container_environment" {
  description = "Environment given to the api and worker containers (no secrets), for comparison with packages/core/src/config.ts."
  value = {
    api    = local.api_env
    worker = local.worker_env
  }
}
