"""factory_boy factories for the core models; other apps' tests build on these."""

from __future__ import annotations

from typing import Any

import factory
from django.contrib.auth import get_user_model

from fleet.accounts.models import Membership
from fleet.accounts.roles import Role
from fleet.inventory.models import FieldDevice, Gateway, GatewayGroup, Organization, Site


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Installer {n}")
    slug = factory.Sequence(lambda n: f"installer-{n}")
    kind = Organization.Kind.INSTALLER


class SiteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Site

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Site {n}")
    address = factory.Sequence(lambda n: f"{n} Solar Way, Fresno, CA")
    latitude = 36.7378
    longitude = -119.7871
    timezone = "America/Los_Angeles"
    nameplate_kw = 9.6


class GatewayFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Gateway
        skip_postgeneration_save = True

    organization = factory.SubFactory(OrganizationFactory)
    site = factory.SubFactory(SiteFactory, organization=factory.SelfAttribute("..organization"))
    serial = factory.Sequence(lambda n: f"GW-{n:06d}")
    hardware_model = "GF-100"
    firmware_version = "1.0.0"

    @factory.post_generation
    def tags(self, create: bool, extracted: Any, **kwargs: Any) -> None:
        from fleet.inventory.models import Tag

        if create and extracted:
            self.tags.set([Tag.objects.get_or_create(slug=slug, defaults={"name": slug})[0] for slug in extracted])


class GatewayGroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GatewayGroup

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Group {n}")


class FieldDeviceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = FieldDevice

    gateway = factory.SubFactory(GatewayFactory)
    kind = FieldDevice.Kind.INVERTER
    protocol = FieldDevice.Protocol.SUNSPEC_TCP
    address = factory.Sequence(lambda n: f"192.0.2.{n % 250 + 1}:502/1")
    make = "SunSpec"
    model = "Sim-103"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "correct-horse-battery")

    @factory.post_generation
    def save_password(self, create: bool, extracted: Any, **kwargs: Any) -> None:
        if create:
            self.save()


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    organization = factory.SubFactory(OrganizationFactory)
    role = Role.VIEWER


def member(organization: Organization, role: str) -> Any:
    """A user holding `role` in `organization`."""
    return MembershipFactory(organization=organization, role=role).user
