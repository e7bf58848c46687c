# Image repositories of the two services (built from Dockerfile.api and Dockerfile.worker).

locals {
  services = toset(["api", "worker"])
}

resource "aws_ecr_repository" "service" {
  for_each = local.services

  name                 = "${local.prefix}/${each.key}"
  image_tag_mutability = "IMMUTABLE" # a tag always means the same image; deployments are reproducible
  force_delete         = var.force_destroy

  image_scanning_configuration {
    scan_on_push = true
  }
}

resource "aws_ecr_lifecycle_policy" "service" {
  for_each = local.services

  repository = aws_ecr_repository.service[each.key].name
  policy = jsonencode({
    rules = [{
      rulePriority = 1
      description  = "Keep the newest ${var.ecr_keep_images} images"
      selection = {
        tagStatus   = "any"
        countType   = "imageCountMoreThan"
        countNumber = var.ecr_keep_images
      }
      action = { type = "expire" }
    }]
  })
}
