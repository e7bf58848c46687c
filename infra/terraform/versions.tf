# Terraform and provider versions, and the AWS provider with the tags every resource carries.

terraform {
  # 1.9+ for validation rules that refer to other variables (worker_max_count vs shard_count).
  required_version = ">= 1.9.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }

  # State backend: configure per environment (e.g. an S3 backend with locking), for instance
  #   terraform init -backend-config=backend.hcl
  # with `backend "s3" {}` added here. Left out so `terraform init -backend=false` validates offline.
}

provider "aws" {
  region = var.region

  default_tags {
    tags = merge(var.tags, {
      Project     = var.name
      Environment = var.environment
      ManagedBy   = "terraform"
    })
  }
}
