from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, OuterRef, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from core.ratelimit import rate_limit
from feed.forms import CommentForm, PostForm
from feed.models import Like, Post

PAGE_SIZE = 10


def annotated_posts(request: HttpRequest) -> QuerySet[Post]:
    posts = Post.objects.select_related("author").annotate(
        like_count=Count("likes", distinct=True),
        comment_count=Count("comments", distinct=True),
    )
    if request.user.is_authenticated:
        posts = posts.annotate(
            liked=Exists(Like.objects.filter(post=OuterRef("pk"), user=request.user))
        )
    return posts.order_by("-created_at", "-id")


def back(request: HttpRequest, post: Post) -> HttpResponseRedirect:
    """Return to the page the button was on (feed page or post), never to another site."""
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return HttpResponseRedirect(target)
    return HttpResponseRedirect(post.get_absolute_url())


def index(request: HttpRequest) -> HttpResponse:
    page = Paginator(annotated_posts(request), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "feed/index.html", {"page": page, "form": PostForm()})


def detail(request: HttpRequest, pk: int) -> HttpResponse:
    post = get_object_or_404(annotated_posts(request), pk=pk)
    return render(
        request,
        "feed/detail.html",
        {"post": post, "comments": post.comments.select_related("author"), "form": CommentForm()},
    )


@rate_limit("post")
@login_required
def create(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = PostForm(request.POST, request.FILES)
        if form.is_valid():
            post = form.save(commit=False)
            post.author = request.user
            post.save()
            messages.success(request, "Your photo is posted.")
            return redirect("feed:index")
        status = 400
    else:
        form = PostForm()
        status = 200
    return render(request, "feed/create.html", {"form": form}, status=status)


@login_required
@require_POST
def delete(request: HttpRequest, pk: int) -> HttpResponse:
    post = get_object_or_404(Post, pk=pk)
    if post.author_id != request.user.pk:
        raise PermissionDenied("You can only delete your own posts.")
    post.delete()
    messages.success(request, "Your post is deleted.")
    return redirect("feed:index")


@login_required
@require_POST
def like(request: HttpRequest, pk: int) -> HttpResponse:
    post = get_object_or_404(Post, pk=pk)
    try:
        with transaction.atomic():
            Like.objects.get_or_create(post=post, user=request.user)
    except IntegrityError:
        pass  # a concurrent click on another server already liked it
    return back(request, post)


@login_required
@require_POST
def unlike(request: HttpRequest, pk: int) -> HttpResponse:
    post = get_object_or_404(Post, pk=pk)
    Like.objects.filter(post=post, user=request.user).delete()
    return back(request, post)


@rate_limit("comment")
@login_required
@require_POST
def comment(request: HttpRequest, pk: int) -> HttpResponse:
    post = get_object_or_404(annotated_posts(request), pk=pk)
    form = CommentForm(request.POST)
    if form.is_valid():
        new = form.save(commit=False)
        new.post = post
        new.author = request.user
        new.save()
        return redirect(f"{post.get_absolute_url()}#comment-{new.pk}")
    return render(
        request,
        "feed/detail.html",
        {"post": post, "comments": post.comments.select_related("author"), "form": form},
        status=400,
    )
