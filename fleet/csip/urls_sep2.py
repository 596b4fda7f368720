"""The sep2 resource tree, mounted at /sep2/ (paths built in fleet.csip.sep)."""

from django.urls import path

from . import resource_views as v

urlpatterns = [
    path("dcap", v.dcap, name="csip-dcap"),
    path("tm", v.time, name="csip-time"),
    path("edev", v.end_device_list, name="csip-edev-list"),
    path("edev/<int:pk>", v.end_device, name="csip-edev"),
    path("edev/<int:pk>/rg", v.registration, name="csip-registration"),
    path("edev/<int:pk>/fsa", v.function_set_assignments, name="csip-fsa"),
    path("edev/<int:pk>/derp", v.program_list, name="csip-derp-list"),
    path("edev/<int:pk>/der", v.der_list, name="csip-der-list"),
    path("edev/<int:pk>/der/1/<str:kind>", v.der_resource, name="csip-der-resource"),
    path("edev/<int:pk>/lel", v.log_events, name="csip-log-events"),
    path("derp/<int:pk>", v.program, name="csip-derp"),
    path("derp/<int:pk>/dderc", v.default_control, name="csip-dderc"),
    path("derp/<int:pk>/derc", v.control_list, name="csip-derc-list"),
    path("derp/<int:pk>/derc/<int:control_pk>", v.control, name="csip-derc"),
    path("rsps/<int:set_pk>/rsp", v.responses, name="csip-responses"),
    path("mup", v.mirror_usage_points, name="csip-mup-list"),
    path("mup/<int:pk>", v.mirror_usage_point, name="csip-mup"),
]
