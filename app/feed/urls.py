from django.urls import path

from feed import views

app_name = "feed"

urlpatterns = [
    path("", views.index, name="index"),
    path("posts/new/", views.create, name="create"),
    path("posts/<int:pk>/", views.detail, name="detail"),
    path("posts/<int:pk>/delete/", views.delete, name="delete"),
    path("posts/<int:pk>/like/", views.like, name="like"),
    path("posts/<int:pk>/unlike/", views.unlike, name="unlike"),
    path("posts/<int:pk>/comments/", views.comment, name="comment"),
]
