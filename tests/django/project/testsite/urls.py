"""The test project's URLs."""

from django.urls import path
from shop import views

urlpatterns = [path("shop/add", views.add)]
