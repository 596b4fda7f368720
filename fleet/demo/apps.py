from django.apps import AppConfig


class DemoConfig(AppConfig):
    """`manage.py demo_fleet`: the demo `make demo` starts. Development only."""

    name = "fleet.demo"
    label = "demo"
