# One customer-managed key for the data at rest: both buckets, every table, the event stream.
# With the default key policy, access is granted by IAM only (see iam.tf), per role and scoped to
# use through those three services (kms:ViaService), so the key cannot be used directly.

resource "aws_kms_key" "data" {
  description             = "${local.prefix}: S3, DynamoDB and Kinesis data at rest"
  enable_key_rotation     = true
  deletion_window_in_days = 30
}

resource "aws_kms_alias" "data" {
  name          = "alias/${local.prefix}-data"
  target_key_id = aws_kms_key.data.key_id
}
