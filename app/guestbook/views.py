from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.guests import is_guest
from core.ratelimit import rate_limit
from guestbook.forms import EntryForm
from guestbook.models import Entry

PAGE_SIZE = 20


def index(request: HttpRequest) -> HttpResponse:
    entries = Entry.objects.select_related("author")
    page = Paginator(entries, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "guestbook/index.html", {"page": page})


def detail(request: HttpRequest, pk: int) -> HttpResponse:
    entry = get_object_or_404(Entry, pk=pk)
    return render(request, "guestbook/detail.html", {"entry": entry})


@rate_limit("guestbook")
@login_required
def create(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = EntryForm(request.POST)
        if form.is_valid():
            entry = form.save(commit=False)
            entry.author = request.user
            entry.save()
            messages.success(request, "Thank you for signing the guestbook.")
            return redirect(entry)
        status = 400
    else:
        initial = {"email": request.user.email}
        if not is_guest(request.user):
            initial["name"] = request.user.get_username()
        form = EntryForm(initial=initial)
        status = 200
    return render(request, "guestbook/create.html", {"form": form}, status=status)


@login_required
@require_POST
def delete(request: HttpRequest, pk: int) -> HttpResponse:
    entry = get_object_or_404(Entry, pk=pk)
    if entry.author_id != request.user.pk:
        raise PermissionDenied("You can only delete your own entries.")
    entry.delete()
    messages.success(request, "Your entry is deleted.")
    return redirect("guestbook:index")
