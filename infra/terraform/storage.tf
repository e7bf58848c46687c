# S3: one bucket for uploads (source PDFs and chunk inputs), one for results (chunk and document
# results). Both private (public access blocked, ACLs disabled), SSE-KMS with bucket keys, TLS only.
# Keys are server-generated: tenants/{tenantId}/documents/{documentId}/... (DESIGN.md section 3).

locals {
  buckets = {
    uploads = aws_s3_bucket.uploads
    results = aws_s3_bucket.results
  }
}

resource "aws_s3_bucket" "uploads" {
  # Account and region in the name: bucket names are global.
  bucket        = "${local.prefix}-uploads-${local.account_id}-${var.region}"
  force_destroy = var.force_destroy
}

resource "aws_s3_bucket" "results" {
  bucket        = "${local.prefix}-results-${local.account_id}-${var.region}"
  force_destroy = var.force_destroy
}

resource "aws_s3_bucket_public_access_block" "this" {
  for_each = local.buckets

  bucket                  = each.value.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  for_each = local.buckets

  bucket = each.value.id
  rule {
    object_ownership = "BucketOwnerEnforced" # disables ACLs
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  for_each = local.buckets

  bucket = each.value.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.data.arn
    }
    # A bucket key cuts KMS requests (and cost) for the many small chunk objects.
    bucket_key_enabled = true
  }
}

data "aws_iam_policy_document" "bucket_tls_only" {
  for_each = local.buckets

  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      each.value.arn,
      "${each.value.arn}/*",
    ]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  for_each = local.buckets

  bucket = each.value.id
  policy = data.aws_iam_policy_document.bucket_tls_only[each.key].json

  # S3 rejects some policies while the public access block is still being applied.
  depends_on = [aws_s3_bucket_public_access_block.this]
}

# Results are the product: keep old versions for a while, so an overwrite or a bad deletion can be
# undone. DELETE /v1/documents leaves delete markers; the data is gone after the noncurrent period.
resource "aws_s3_bucket_versioning" "results" {
  bucket = aws_s3_bucket.results.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "uploads" {
  bucket = aws_s3_bucket.uploads.id

  rule {
    id     = "expire-uploads"
    status = "Enabled"
    filter {}

    expiration {
      days = var.uploads_expiration_days
    }
  }

  # Uploads are streamed as multipart uploads; a crashed request leaves parts that cost money.
  rule {
    id     = "abort-incomplete-multipart"
    status = "Enabled"
    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "results" {
  bucket = aws_s3_bucket.results.id

  rule {
    id     = "expire-noncurrent-versions"
    status = "Enabled"
    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.results_noncurrent_version_days
    }
  }

  rule {
    id     = "clean-up"
    status = "Enabled"
    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }

    expiration {
      expired_object_delete_marker = true
    }
  }

  # Lifecycle rules on a versioned bucket need versioning in place first.
  depends_on = [aws_s3_bucket_versioning.results]
}
