# DynamoDB tables. Key layouts must match packages/core/src/aws/resources.ts (TABLE_SCHEMAS), which
# creates the same tables on the local stack. All on-demand, with point-in-time recovery and
# encryption under the data key.

resource "aws_dynamodb_table" "files" {
  name                        = "${local.prefix}-files"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pk" # ${tenantId}#${documentId}, or ${tenantId}#idem#${key}
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "pk"
    type = "S"
  }

  # Idempotency rows carry expiresAt (epoch seconds) and expire by themselves.
  ttl {
    attribute_name = "expiresAt"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.data.arn
  }
}

resource "aws_dynamodb_table" "status" {
  name                        = "${local.prefix}-status"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pk" # ${tenantId}#${documentId}
  range_key                   = "sk" # JOB, or CHUNK#000042
  deletion_protection_enabled = var.deletion_protection

  # The aggregator Lambda consumes this stream (lambda.tf).
  stream_enabled   = true
  stream_view_type = "NEW_AND_OLD_IMAGES"

  attribute {
    name = "pk"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "S"
  }

  attribute {
    name = "gsi1pk"
    type = "S"
  }

  attribute {
    name = "gsi1sk"
    type = "S"
  }

  # A tenant's jobs, newest first: gsi1pk = tenantId (JOB rows only), gsi1sk = ${createdAt}#${documentId}.
  global_secondary_index {
    name            = "byTenant"
    hash_key        = "gsi1pk"
    range_key       = "gsi1sk"
    projection_type = "ALL"
  }

  attribute {
    name = "openStatus"
    type = "S"
  }

  attribute {
    name = "openAt"
    type = "S"
  }

  # Sparse: documents the reconciler watches (openStatus = the status while not finished, and on a
  # cancelled tombstone until it is purged), by the time of their last transition (openAt: chunk
  # counts do not write the index); queried per status, never scanned.
  global_secondary_index {
    name            = "byOpenStatus"
    hash_key        = "openStatus"
    range_key       = "openAt"
    projection_type = "KEYS_ONLY"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.data.arn
  }
}

resource "aws_dynamodb_table" "tenants" {
  name                        = "${local.prefix}-tenants"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pk" # KEY#${sha256(apiKey)} or TENANT#${tenantId}
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "pk"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.data.arn
  }
}

# The stream consumer's leases, one row per shard (KCL 2.x attribute names).
resource "aws_dynamodb_table" "leases" {
  name                        = "${local.prefix}-leases"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "leaseKey"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "leaseKey"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.data.arn
  }
}

# Records the worker gave up on (terminal error or maxAttempts reached), kept for inspection and replay.
resource "aws_dynamodb_table" "dead_letters" {
  name                        = "${local.prefix}-dead-letters"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pk"
  range_key                   = "sk"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "pk"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.data.arn
  }
}

# Webhook deliveries (packages/core/src/store/webhook-deliveries.ts): one row per document event
# and target with its attempts. Pending rows carry dueShard/dueAt, so the sparse byDue index is the
# persisted delivery schedule the workers poll. Finished rows expire 30 days later (TTL).
resource "aws_dynamodb_table" "webhooks" {
  name                        = "${local.prefix}-webhooks"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pk"
  range_key                   = "sk"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "pk"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "S"
  }

  attribute {
    name = "dueShard"
    type = "S"
  }

  attribute {
    name = "dueAt"
    type = "S"
  }

  global_secondary_index {
    name            = "byDue"
    hash_key        = "dueShard"
    range_key       = "dueAt"
    projection_type = "KEYS_ONLY"
  }

  ttl {
    attribute_name = "expiresAt"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.data.arn
  }
}

# The fleet-wide model rate limit (GEMINI_RPM / GEMINI_TPM): one GCRA bucket row per model, updated
# with conditional writes by every API and worker process.
resource "aws_dynamodb_table" "rate_limit" {
  name         = "${local.prefix}-ratelimit"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "pk"

  attribute {
    name = "pk"
    type = "S"
  }

  # The API's per-tenant request windows (API#<budget>:<tenant>#<start>) expire by themselves.
  ttl {
    attribute_name = "expiresAt"
    enabled        = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.data.arn
  }
}
