from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render, resolve_url
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from accounts.forms import SignUpForm
from accounts.guests import create_guest
from core.ratelimit import rate_limit

BACKEND = "django.contrib.auth.backends.ModelBackend"


def safe_next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return resolve_url(settings.LOGIN_REDIRECT_URL)


@rate_limit("signup")
def signup(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = SignUpForm(request.POST)
        if form.is_valid():
            user = form.save()
            login(request, user, backend=BACKEND)
            return HttpResponseRedirect(safe_next(request))
        status = 400
    else:
        form = SignUpForm()
        status = 200
    return render(request, "accounts/signup.html", {"form": form}, status=status)


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def form_invalid(self, form) -> HttpResponse:
        # A rejected form is a client error (400), as on every other form of the site.
        response = super().form_invalid(form)
        response.status_code = 400
        return response


login_view = rate_limit("login")(LoginView.as_view())


@rate_limit("guest")
@require_POST
def guest(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect(safe_next(request))
    login(request, create_guest(), backend=BACKEND)
    return HttpResponseRedirect(safe_next(request))
