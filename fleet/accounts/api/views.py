from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, status, views
from rest_framework.request import Request
from rest_framework.response import Response

from fleet.accounts import services
from fleet.accounts.api.viewsets import AuditedModelViewSet
from fleet.accounts.models import Membership
from fleet.accounts.roles import Capability
from fleet.accounts.selectors import organizations_where
from fleet.audit.services import request_ip

from .serializers import CurrentUserSerializer, MembershipSerializer, NewUserSerializer


def memberships_managed_by(user: Any) -> Any:
    return Membership.objects.filter(
        organization__in=organizations_where(user, Capability.MANAGE_MEMBERS)
    ).select_related("user", "organization")


class MembershipViewSet(AuditedModelViewSet):
    """Who belongs to which organization with which role. Admins of the organization only."""

    selector = staticmethod(memberships_managed_by)
    serializer_class = MembershipSerializer
    read_capability = Capability.MANAGE_MEMBERS
    filterset_fields = ["role", "organization__slug"]
    ordering_fields = ["created", "role"]


class UserCreateView(views.APIView):
    """Create a user with a first membership in an organization you administer."""

    read_capability = Capability.MANAGE_MEMBERS

    @extend_schema(request=NewUserSerializer, responses={201: CurrentUserSerializer})
    def post(self, request: Request) -> Response:
        form = NewUserSerializer(data=request.data, context={"request": request})
        form.is_valid(raise_exception=True)
        try:
            user = services.create_user_with_membership(
                **form.validated_data, actor=request.user, ip=request_ip(request)
            )
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"password": exc.messages}) from exc
        return Response(CurrentUserSerializer(user).data, status=status.HTTP_201_CREATED)


class CurrentUserView(views.APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses=CurrentUserSerializer)
    def get(self, request: Request) -> Response:
        return Response(CurrentUserSerializer(request.user).data)
